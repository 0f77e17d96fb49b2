#!/usr/bin/env bash
# The README's first quick-start command: installs what building needs and is missing (apt
# packages only: no database, no vendor SDK), builds, and runs `wework-msgaudit demo`, which pulls
# and decrypts the built-in emulator's demo corp and prints what arrives. Extra arguments go to
# `demo` (see `cargo run -- demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-sdk --no-db
exec cargo run --quiet -- demo --follow 5s "$@"
