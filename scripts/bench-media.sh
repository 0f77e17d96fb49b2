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
# The issue's Python baseline (benches/support/baseline.py): pyweworkfinance (the wheel fetched by
# scripts/setup.sh) and pycryptodome, installed into .cache/py, not into the system's Python.
if ! PYTHONPATH="$PWD/.cache/py" python3 -c 'import Crypto, pyweworkfinance' 2>/dev/null; then
    wheel=$(ls .cache/sdk/pip/pyweworkfinance-*.whl 2>/dev/null | head -1 || true)
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target .cache/py pycryptodome ${wheel:-pyweworkfinance} \
        || echo "bench-media: could not install the Python baseline's packages; the bench skips it"
fi
if [ "${BENCH_SDK:-real}" = real ] && [ -f "$real" ]; then
    netns=(unshare -n)
    [ "$(id -u)" = 0 ] || netns=(unshare -r -n)
    WWF_REAL_SDK="$real" "${netns[@]}" -- bash -c 'ip link set lo up && exec cargo bench "$@" --bench media' bash "$@"
else
    cargo bench "$@" --bench media
fi
