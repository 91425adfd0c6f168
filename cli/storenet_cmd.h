// `berth disk`, `berth net`, `berth secgroup` and `berth portfwd`: the storage and network
// objects of a Berth server, through its REST API (/v1/disks, /v1/networks, /v1/secgroups,
// /v1/portforwards). Every command takes --json and --help; failures exit 1 with the server's
// message (naming the wrong field), usage errors exit 2.
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
