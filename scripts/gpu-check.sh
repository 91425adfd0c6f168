#!/usr/bin/env bash
# Checks the real GPU path end to end on a host with NVIDIA GPUs (it cannot run elsewhere):
#   1. inventory: the dev server's host lists every GPU nvidia-smi lists, with the same UUIDs,
#      each healthy (no fault in its `nvidia-smi -q` error counters);
#   2. a process workload granted one GPU runs `nvidia-smi -L` and sees exactly that GPU (the
#      device_id in its status), and CUDA_VISIBLE_DEVICES names it;
#   3. a container workload granted one GPU, given it through CDI, runs `nvidia-smi -L` and sees
#      exactly that GPU (needs a rootfs with glibc: GPU_CHECK_ROOTFS=rootfs.tar, e.g. made with
#      `docker export $(docker create debian:12) > rootfs.tar`; skipped, and said so, without);
#   4. an MPS share: a workload with `share: 500m, memory: 4Gi` gets its limits, its GPU's MPS
#      control daemon runs, and it is gone once the workload is deleted.
# Usage: sudo scripts/gpu-check.sh [BUILD_DIR]   (BUILD_DIR defaults to build)
# Needs: root, nvidia-smi, runc; for 3, nvidia-ctk (the CDI spec is generated into a temporary
# directory); for 4, nvidia-cuda-mps-control. Prints PASS/FAIL/SKIP per check; exits 1 when any
# check failed. Leaves nothing behind: the server, its workloads and its data go at the end.
set -uo pipefail

BUILD=${1:-build}
BERTH=$(cd "$BUILD" 2>/dev/null && pwd)/berth
[ -x "$BERTH" ] || { echo "gpu-check: no berth binary at $BUILD/berth; build first (scripts/build.sh)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "gpu-check: run as root (runc, MPS, CDI device nodes)" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: not a GPU host" >&2; exit 2; }
command -v jq >/dev/null || { echo "gpu-check: needs jq (apt-get install jq)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/berth-gpu-check-XXXXXX)
export BERTH_DATA_DIR=$WORK/data
SERVER_PID=
FAILED=0
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    for w in $("$BERTH" workload ls --json 2>/dev/null | jq -r '.[].name'); do
      "$BERTH" workload delete "$w" >/dev/null 2>&1
    done
    for _ in $(seq 600); do
      [ "$("$BERTH" workload ls --json 2>/dev/null | jq length)" = 0 ] && break
      sleep 0.1
    done
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=1; }
skip() { echo "SKIP $*"; }

# Polls (up to a minute) until the command succeeds.
eventually() {
  for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

mkdir -p "$WORK/cdi" "$BERTH_DATA_DIR/imports"
CDI_OK=0
if command -v nvidia-ctk >/dev/null; then
  if nvidia-ctk cdi generate --output="$WORK/cdi/nvidia.yaml" >"$WORK/cdi.log" 2>&1; then
    CDI_OK=1
  else
    echo "gpu-check: nvidia-ctk cdi generate failed:"; cat "$WORK/cdi.log"
  fi
fi
cat >"$WORK/agent.yaml" <<YAML
cdi_dirs: [$WORK/cdi]
YAML

echo "== berth serve --dev (data in $BERTH_DATA_DIR)"
"$BERTH" serve --dev --listen 127.0.0.1:0 --agent-config "$WORK/agent.yaml" \
  >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
if ! eventually sh -c "'$BERTH' host ls --json | jq -e 'length > 0'"; then
  echo "gpu-check: the server did not come up:"; cat "$WORK/serve.log"; exit 1
fi
HOST=$("$BERTH" host ls --json | jq -r '.[0].name')

# 1. Inventory.
SMI_UUIDS=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | sort | tr '\n' ' ')
BERTH_UUIDS=$("$BERTH" host get "$HOST" --json | jq -r '.inventory.gpus[].uuid' | sort | tr '\n' ' ')
if [ -n "$SMI_UUIDS" ] && [ "$SMI_UUIDS" = "$BERTH_UUIDS" ]; then
  pass "inventory: $HOST lists the GPUs nvidia-smi lists: $BERTH_UUIDS"
else
  fail "inventory: nvidia-smi lists [$SMI_UUIDS], berth lists [$BERTH_UUIDS]"
fi
UNHEALTHY=$("$BERTH" host get "$HOST" --json |
  jq -r '.inventory.gpus[] | select(.healthy == false) | "\(.uuid): \(.health)"')
if [ -z "$UNHEALTHY" ]; then
  pass "health: no GPU reports a fault (nvidia-smi -q error counters)"
else
  fail "health: unhealthy GPUs: $UNHEALTHY"
fi
"$BERTH" host get "$HOST" --json | jq '.inventory | {gpus, fingerprint}'

# Waits for workload $1 to print "done" and checks that `nvidia-smi -L` inside listed exactly
# the GPU its status records.
check_sees_own_gpu() {
  local name=$1 what=$2
  if ! eventually sh -c "'$BERTH' workload logs $name | grep -q '^done$'"; then
    fail "$what: no output; status: $("$BERTH" workload get "$name" --json | jq -c .status)"
    return
  fi
  local id logs listed
  id=$("$BERTH" workload get "$name" --json | jq -r '.status.gpus[0].device_id')
  logs=$("$BERTH" workload logs "$name")
  echo "$logs" | sed "s/^/  $name: /"
  listed=$(echo "$logs" | grep -c '^GPU [0-9]*:')
  if [ "$listed" = 1 ] && echo "$logs" | grep -q "UUID: $id)" &&
     echo "$logs" | grep -q "^cuda=$id$"; then
    pass "$what: sees exactly $id"
  else
    fail "$what: status says $id; it listed $listed GPUs"
  fi
}

# 2. A process.
"$BERTH" workload create -f - <<'YAML'
name: gpu-check-process
kind: process
command: ["/bin/sh", "-c", "echo cuda=$CUDA_VISIBLE_DEVICES; nvidia-smi -L; echo done; sleep 3600"]
resources: {cpu: 500m, memory: 256Mi, gpu: {count: 1}}
YAML
check_sees_own_gpu gpu-check-process "process"

# 3. A container through CDI.
if [ "$CDI_OK" != 1 ]; then
  skip "container: nvidia-ctk is missing or could not generate a CDI spec"
elif [ -z "${GPU_CHECK_ROOTFS:-}" ]; then
  skip "container: set GPU_CHECK_ROOTFS to a rootfs tar with glibc (docker export ...)"
else
  cp "$GPU_CHECK_ROOTFS" "$BERTH_DATA_DIR/imports/gpu-check-rootfs.tar"
  "$BERTH" image import gpu-check --rootfs gpu-check-rootfs.tar
  "$BERTH" workload create -f - <<'YAML'
name: gpu-check-container
kind: container
image: gpu-check
command: ["/bin/sh", "-c", "echo cuda=$CUDA_VISIBLE_DEVICES; nvidia-smi -L; echo done; sleep 3600"]
resources: {cpu: 500m, memory: 256Mi, gpu: {count: 1}}
YAML
  check_sees_own_gpu gpu-check-container "container"
fi

# 4. An MPS share.
if ! command -v nvidia-cuda-mps-control >/dev/null; then
  skip "mps: nvidia-cuda-mps-control is missing"
else
  "$BERTH" workload create -f - <<'YAML'
name: gpu-check-share
kind: process
command: ["/bin/sh", "-c", "echo threads=$CUDA_MPS_ACTIVE_THREAD_PERCENTAGE mem=$CUDA_MPS_PINNED_DEVICE_MEM_LIMIT pipe=$CUDA_MPS_PIPE_DIRECTORY; nvidia-smi -L; echo done; sleep 3600"]
resources: {cpu: 500m, memory: 256Mi, gpu: {share: 500m, memory: 4Gi}}
YAML
  if eventually sh -c "'$BERTH' workload logs gpu-check-share | grep -q '^done$'"; then
    logs=$("$BERTH" workload logs gpu-check-share)
    echo "$logs" | sed 's/^/  gpu-check-share: /'
    pipe=$(echo "$logs" | sed -n 's/.*pipe=//p')
    if echo "$logs" | grep -q '^threads=50 mem=0=4096M pipe=/' &&
       echo get_server_list | CUDA_MPS_PIPE_DIRECTORY=$pipe nvidia-cuda-mps-control >/dev/null 2>&1; then
      pass "mps: the share runs with its limits under a running control daemon ($pipe)"
    else
      fail "mps: limits or control daemon missing"
    fi
    "$BERTH" workload delete gpu-check-share >/dev/null
    if eventually sh -c "! ls '$BERTH_DATA_DIR'/agent/mps/*/daemon.json"; then
      pass "mps: the daemon went with the last share"
    else
      fail "mps: the daemon outlived its last share"
    fi
  else
    fail "mps: no output; status: $("$BERTH" workload get gpu-check-share --json | jq -c .status)"
  fi
fi

[ "$FAILED" = 0 ] && echo "gpu-check: all checks passed" || echo "gpu-check: some checks failed"
exit "$FAILED"
