#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, contract, end-to-end), then the
# fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
# The fuzzers, a minute each (build-fuzz/, clang with ASan and UBSan); nonzero on any finding.
scripts/fuzz.sh 60
