#!/usr/bin/env bash
# Builds the images Berth's tests and demo use, from Debian packages already on the host:
#   DIR/tiny-vm/vmlinuz      Debian's cloud kernel
#   DIR/tiny-vm/initrd.img   a busybox initramfs whose /init prints BERTH-GUEST-READY on the
#                            serial console, runs what the kernel command line asks, and powers
#                            off on request or when the ACPI power button is pressed
#   DIR/busybox-rootfs/      a busybox container root filesystem (directory)
#   DIR/busybox-rootfs.tar   the same rootfs as a tar archive
# Usage: scripts/build-test-images.sh [DIR]   (DIR defaults to .data/images)
# Idempotent and quick: a second run with the same inputs only checks a stamp file.
#
# Guest kernel command line understood by /init:
#   berth.run=WORDS      command to run; ',' separates words (berth.run=echo,hello)
#   berth.run64=BASE64   command to run, base64 of a shell command line (any characters)
#   berth.poweroff=1     power off when the command finishes
#   berth.ignore_powerdown=1  ignore the ACPI power button (tests of forced stops)
# Each NIC takes its address by DHCP in the background and announces it on the console as
# BERTH-GUEST-IP=IFACE:ADDRESS; virtio disks appear as /dev/vda, /dev/vdb, ...
# After the command the guest prints BERTH-RUN-EXIT=<code>.
set -euo pipefail

DIR=${1:-.data/images}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# Tests running in parallel may all ask for the images: one builds, the others wait.
exec 9>"$DIR/.lock"
flock 9

KERNEL=${BERTH_KERNEL:-$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1 || true)}
if [ -z "$KERNEL" ] || [ ! -r "$KERNEL" ]; then
  echo "build-test-images: no readable /boot/vmlinuz-*-cloud-amd64; install linux-image-cloud-amd64" >&2
  exit 1
fi
KVER=$(basename "$KERNEL" | sed 's/^vmlinuz-//')
BUSYBOX=$(command -v busybox || true)
if [ -z "$BUSYBOX" ]; then
  echo "build-test-images: busybox not found; install busybox-static" >&2
  exit 1
fi
BUSYBOX=$(readlink -f "$BUSYBOX")
MODDIR=/lib/modules/$KVER
# The guests' DHCP client script, shared with the example model server's VM image.
UDHCPC_SCRIPT=$(cd "$(dirname "$0")" && pwd)/guest-udhcpc.sh
# Modules the guest loads: the ACPI power button and evdev (so system_powerdown reaches /init),
# pvpanic (so a guest panic reaches QEMU), virtio for disks and NICs.
MODULES=(
  kernel/drivers/acpi/button.ko
  kernel/drivers/input/evdev.ko
  kernel/drivers/misc/pvpanic/pvpanic.ko
  kernel/drivers/misc/pvpanic/pvpanic-mmio.ko
  kernel/drivers/virtio/virtio.ko
  kernel/drivers/virtio/virtio_ring.ko
  kernel/drivers/virtio/virtio_pci_legacy_dev.ko
  kernel/drivers/virtio/virtio_pci_modern_dev.ko
  kernel/drivers/virtio/virtio_pci.ko
  kernel/drivers/block/virtio_blk.ko
  kernel/net/core/failover.ko
  kernel/drivers/net/net_failover.ko
  kernel/drivers/net/virtio_net.ko
)

# The stamp covers everything the output depends on.
stamp_input() {
  sha256sum "$0" "$UDHCPC_SCRIPT"
  stat -c '%n %s %Y' "$KERNEL" "$BUSYBOX"
}
STAMP="$DIR/.stamp"
want=$(stamp_input | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$DIR/tiny-vm/initrd.img" ] &&
  [ -f "$DIR/tiny-vm/vmlinuz" ] && [ -x "$DIR/busybox-rootfs/bin/busybox" ] &&
  [ -f "$DIR/busybox-rootfs.tar" ]; then
  echo "build-test-images: up to date in $DIR"
  exit 0
fi

work=$(mktemp -d "$DIR/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- tiny VM: kernel + busybox initramfs ----
ird=$work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,tmp,etc,lib/modules,root}
cp "$BUSYBOX" "$ird/bin/busybox"
for m in "${MODULES[@]}"; do
  if [ -f "$MODDIR/$m" ]; then
    cp "$MODDIR/$m" "$ird/lib/modules/"
  fi
done
cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in button evdev pvpanic pvpanic-mmio virtio_ring virtio virtio_pci_legacy_dev \
  virtio_pci_modern_dev virtio_pci virtio_blk failover net_failover virtio_net; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
hostname berth-guest
# Plain '\n' line ends on the serial console, so logs read like a program's output.
stty -onlcr </dev/console 2>/dev/null

# Every NIC asks for its address by DHCP in the background (and keeps renewing it); the
# lease is announced on the console as BERTH-GUEST-IP=IFACE:ADDRESS.
ip link set lo up
for n in /sys/class/net/eth*; do
  [ -e "$n" ] || continue
  i=${n##*/}
  ip link set "$i" up
  (udhcpc -i "$i" -s /etc/udhcpc.script -f -t 0 -T 1 >/dev/null 2>&1 &)
done

ignore_powerdown=0
grep -q 'berth.ignore_powerdown=1' /proc/cmdline && ignore_powerdown=1
# Power off when the ACPI power button is pressed (QMP system_powerdown).
[ "$ignore_powerdown" = 1 ] || for e in /sys/class/input/event*; do
  [ -e "$e/device/name" ] || continue
  if grep -q "Power Button" "$e/device/name"; then
    dev=/dev/input/${e##*/}
    (head -c 1 "$dev" >/dev/null && echo BERTH-GUEST-POWERDOWN && sync && poweroff -f) &
  fi
done

run=""
off=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    berth.run=*) run=$(echo "${arg#berth.run=}" | tr ',' ' ') ;;
    berth.run64=*) run=$(echo "${arg#berth.run64=}" | base64 -d) ;;
    berth.poweroff=1) off=1 ;;
  esac
done

echo BERTH-GUEST-READY
if [ -n "$run" ]; then
  sh -c "$run"
  echo "BERTH-RUN-EXIT=$?"
fi
if [ "$off" = 1 ]; then
  sync
  poweroff -f
fi
while true; do sleep 3600; done
EOF
chmod 0755 "$ird/init"
cp "$UDHCPC_SCRIPT" "$ird/etc/udhcpc.script"
chmod 0755 "$ird/etc/udhcpc.script"
mkdir -p "$work/tiny-vm"
(cd "$ird" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 -n \
  >"$work/tiny-vm/initrd.img"
cp "$KERNEL" "$work/tiny-vm/vmlinuz"
chmod 0644 "$work/tiny-vm/vmlinuz" "$work/tiny-vm/initrd.img"

# ---- busybox container rootfs ----
rfs=$work/busybox-rootfs
mkdir -p "$rfs"/{bin,dev,proc,sys,tmp,etc,root,run,var}
cp "$BUSYBOX" "$rfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "$rfs/bin/$applet"
done
chmod 1777 "$rfs/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
  >"$rfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rfs/etc/group"
echo busybox >"$rfs/etc/hostname"
tar -C "$rfs" -cf "$work/busybox-rootfs.tar" --numeric-owner --sort=name .

# ---- swap the results in ----
rm -rf "$DIR/tiny-vm" "$DIR/busybox-rootfs" "$DIR/busybox-rootfs.tar"
mv "$work/tiny-vm" "$DIR/tiny-vm"
mv "$rfs" "$DIR/busybox-rootfs"
mv "$work/busybox-rootfs.tar" "$DIR/busybox-rootfs.tar"
echo "$want" >"$STAMP"
echo "build-test-images: built in $DIR"
