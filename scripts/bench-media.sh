#!/usr/bin/env bash
# The media benchmark of issue 18 (benches/media.rs), in one command: the simplest sequential
# downloader against the daemon with default settings, in the same run. With the real vendor SDK
# (.cache/sdk, fetched by scripts/setup.sh) it runs inside a loopback-only network namespace
# against the fake WeCom API; without it, on the emulator's drop-in .so. Prints the load average
# first: run it on an idle machine. Extra arguments go to cargo (e.g. --offline).
#   BENCH_ROUNDS=3 scripts/bench-media.sh     # three rounds, the best of each
#   BENCH_SDK=emulator scripts/bench-media.sh # the emulator's .so even when the real SDK is there
set -euo pipefail
cd "$(dirname "$0")/.."
echo "bench-media: load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
real="$PWD/.cache/sdk/libWeWorkFinanceSdk_C_x86.so"
cargo bench "$@" --bench media --no-run
if [ "${BENCH_SDK:-real}" = real ] && [ -f "$real" ]; then
    netns=(unshare -n)
    [ "$(id -u)" = 0 ] || netns=(unshare -r -n)
    WWF_REAL_SDK="$real" "${netns[@]}" -- bash -c 'ip link set lo up && exec cargo bench "$@" --bench media' bash "$@"
else
    cargo bench "$@" --bench media
fi
