#!/bin/sh
# udhcpc's script in Berth's test guests and the example model server's VM: sets the leased
# address and the default route, and announces the first lease on the console as
# BERTH-GUEST-IP=IFACE:ADDRESS.
case "$1" in
  bound | renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
    if [ -n "$router" ]; then
      route del default 2>/dev/null
      route add default gw "${router%% *}" dev "$interface"
    fi
    [ "$1" = bound ] && echo "BERTH-GUEST-IP=$interface:$ip" >/dev/console
    ;;
  deconfig) ifconfig "$interface" 0.0.0.0 ;;
esac
exit 0
