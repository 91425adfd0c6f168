// `berth disk`, `berth net`, `berth secgroup` and `berth portfwd`: the storage and network
// objects of a Berth server, through its REST API's typed client (api::Client: disks, pools,
// networks, security groups, port forwards). Every command takes --json and --help; failures exit 1
// with the server's message (naming the wrong field), usage errors exit 2.
#pragma once

#include <vector>

#include "core/flags.h"

namespace berth::cli {

// The disk, net, secgroup and portfwd groups.
core::Command DiskCommand();
core::Command NetCommand();
core::Command SecgroupCommand();
core::Command PortfwdCommand();

}  // namespace berth::cli
