#!/usr/bin/env bash
# Fails when a C++ source under the project's layers is not formatted per .clang-format.
# `scripts/check-format.sh --fix` rewrites them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.h' '*.cc' 2>/dev/null || find core sched state runtime control agent api sim cli main bench tests -name '*.h' -o -name '*.cc')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
# One clang-format for every file (a process per file costs a minute); each misformatted line is
# reported as "FILE:LINE:COL: error: code should be clang-formatted".
if report=$(clang-format --dry-run -Werror "${files[@]}" 2>&1); then
  echo "format: ${#files[@]} files formatted"
  exit 0
fi
bad=$(printf '%s\n' "$report" | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u)
if [ -z "$bad" ]; then
  printf '%s\n' "$report" >&2
  echo "format: clang-format failed (above)" >&2
  exit 1
fi
while read -r f; do echo "not formatted: $f (run scripts/check-format.sh --fix)"; done <<<"$bad"
exit 1
