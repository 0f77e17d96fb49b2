#!/usr/bin/env bash
# The README's first quick-start command: installs what building needs and is missing (apt
# packages only: no database, no vendor SDK), builds, and runs `wework-msgaudit demo`, which runs
# the built-in emulator's demo corp through the full pipeline into demo-data/demo.db for 10 s,
# printing a live summary every second. Extra arguments go to `demo` (see `cargo run -- demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-sdk --no-db
exec cargo run --quiet -- demo --log warn "$@"
