#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) into build-fuzz/, seeds them
# with the project's own specs and fuzz/corpus/ (and fuzz/TARGET.dict, a target's dictionary,
# where there is one), and runs each for SECONDS (default 60).
# Exits nonzero when any target finds a crash, a leak, a sanitizer report, a timeout or an
# out-of-memory; the input that did it lands in build-fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [SECONDS]         FUZZ_TARGETS="body_parser_fuzz" to run only some
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
FUZZ_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=${FUZZ_TARGETS:-"body_parser_fuzz router_fuzz task_api_fuzz"}

if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBERTH_FUZZ=ON -DBERTH_LAYERS="core;sched;state;runtime;control;api;agent;web" >/dev/null
fi
# shellcheck disable=SC2086
cmake --build "$FUZZ_DIR" -j"$(nproc)" --target $TARGETS

# Seeds: every fenced YAML or JSON block of the docs, as a body and as a workload create (the
# task API takes no such documents: its seeds are fuzz/corpus/task_api_fuzz/ alone).
seeds="$FUZZ_DIR/seeds"
rm -rf "$seeds"
mkdir -p "$seeds/body_parser_fuzz" "$seeds/router_fuzz" "$seeds/task_api_fuzz"
python3 - "$seeds" README.md docs/*.md <<'PY'
import pathlib, re, sys
out = pathlib.Path(sys.argv[1])
n = 0
for doc in sys.argv[2:]:
    text = pathlib.Path(doc).read_text(errors="replace")
    blocks = re.findall(r"```(?:yaml|yml|json)\n(.*?)```", text, re.S)
    blocks += re.findall(r"<<'YAML'\n(.*?)\nYAML\n", text, re.S)
    for block in blocks:
        n += 1
        (out / "body_parser_fuzz" / f"doc{n}").write_text(block)
        (out / "router_fuzz" / f"doc{n}").write_text("POST /v1/workloads\n" + block)
print(f"fuzz: {n} seeds from the docs")
PY

status=0
for t in $TARGETS; do
  corpus="$FUZZ_DIR/corpus/$t"
  artifacts="$FUZZ_DIR/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  # A target's dictionary of request tokens, where it has one.
  dict=()
  if [ -f "fuzz/$t.dict" ]; then dict=(-dict="fuzz/$t.dict"); fi
  echo "fuzz: $t for ${SECONDS_EACH}s"
  if ! "$FUZZ_DIR/fuzz/$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 \
      -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts" ${dict[@]+"${dict[@]}"} \
      "$corpus" "fuzz/corpus/$t" "$seeds/$t" >"$FUZZ_DIR/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; see $FUZZ_DIR/$t.log and $artifacts" >&2
    tail -n 60 "$FUZZ_DIR/$t.log" >&2
    status=1
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$FUZZ_DIR/$t.log" || true
done
exit $status
