#!/usr/bin/env bash
# Installs every Debian package Berth needs to build, test and run, and only what is missing.
# Idempotent: a second run with everything present changes nothing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libabsl-dev nlohmann-json3-dev libsqlite3-dev sqlite3 libboost-dev libyaml-cpp-dev libyaml-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang-format
  qemu-system-x86 qemu-utils runc busybox-static cpio linux-image-cloud-amd64
  nftables dnsmasq-base iproute2 e2fsprogs xfsprogs zstd procps
  etcd-server etcd-client curl python3-minimal
  jq  # scripts/gpu-check.sh reads the CLI's --json output with it
  ccache lld clang libclang-rt-14-dev
  nodejs chromium
  python3-torch  # examples/ (a trainer and a model server) and the end-to-end tests that run them
  extlinux  # the example model server's VM image boots with it (examples/build-images.py)
)
# The dashboard's build (web/) needs npm: a package of its own with Debian's nodejs, part of
# nodejs where that comes from NodeSource.
if ! command -v npm >/dev/null; then
  PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run as root (or with sudo) to install them" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
