#!/usr/bin/env bash
# Runs clang's thread-safety analysis (-Wthread-safety) over every production source of the build
# in BUILD_DIR (default build/, from its compile_commands.json), as errors: a member read or a
# call outside the mutex its ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED names fails. gcc, the
# main compiler, ignores those annotations; this check is what makes them mean something.
#   scripts/check-thread-safety.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${BUILD_DIR:-build}}
db="$BUILD_DIR/compile_commands.json"
if [ ! -f "$db" ]; then
  echo "thread-safety: no $db; build first (scripts/build.sh)" >&2
  exit 2
fi
if ! command -v clang++ >/dev/null; then
  echo "thread-safety: clang++ is missing; scripts/setup.sh installs it" >&2
  exit 2
fi
# One clang -fsyntax-only line per production translation unit (tests and benchmarks are left out).
python3 - "$db" > "$BUILD_DIR/thread-safety.cmds" <<'PY'
import json, shlex, sys
for c in json.load(open(sys.argv[1])):
    f = c["file"]
    if f.endswith("_test.cc") or "/bench/" in f or "/tests/" in f or "/fuzz/" in f:
        continue
    args = shlex.split(c["command"])
    while args and ("ccache" in args[0] or args[0].endswith(("c++", "g++", "clang++"))):
        args = args[1:]
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif a != "-c" and not a.startswith("-fsanitize"):
            out.append(a)
    print("cd %s && clang++ -fsyntax-only %s -Wno-everything -Wthread-safety -Werror=thread-safety"
          % (shlex.quote(c["directory"]), " ".join(shlex.quote(a) for a in out)))
PY
n=$(wc -l < "$BUILD_DIR/thread-safety.cmds")
if ! xargs -d '\n' -P"$(nproc)" -I{} bash -c '{}' < "$BUILD_DIR/thread-safety.cmds"; then
  echo "thread-safety: clang found unguarded accesses (above)" >&2
  exit 1
fi
echo "thread-safety: $n files clean"
