#!/usr/bin/env bash
# Installs what is missing, builds, and starts a development server (server + local agent,
# SQLite store under .data/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/berth serve --dev "$@"
