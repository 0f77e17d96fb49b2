#!/usr/bin/env bash
# The whole test suite (the README's test command). Installs what is missing first
# (scripts/setup.sh), builds everything, then runs every test inside a private network namespace
# that has only loopback (`unshare -n`): the real vendor SDK dials qyapi.weixin.qq.com when no
# proxy is set, and no test may send traffic off this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export WWF_REAL_SDK="$PWD/.cache/sdk/libWeWorkFinanceSdk_C_x86.so"
export RUST_BACKTRACE=1
# No incremental caches: a one-shot build gains nothing from them and they cost disk (a CI machine
# once ran out of it while linking the test binaries).
export CARGO_INCREMENTAL=0

df -h . | sed 's/^/test: disk: /'

echo "test: building"
cargo build --workspace --all-targets

# The summary line of every drill and end-to-end run, printed at the end whatever happens.
export WWF_TEST_SUMMARY="$PWD/target/test-summary.txt"
rm -f "$WWF_TEST_SUMMARY"
# The whole output of the tests is kept; at the end, after the summaries, the first lines of every
# failure (its panic message) are printed again, shortened, so that the tail of a long log says
# why a test failed.
TEST_OUTPUT="$PWD/target/test-output.txt"
rm -f "$TEST_OUTPUT"
print_summary() {
    if [ -s "$WWF_TEST_SUMMARY" ]; then
        echo "test: summaries of the drills and end-to-end runs:"
        sed 's/^/  /' "$WWF_TEST_SUMMARY"
    fi
    if [ -s "$TEST_OUTPUT" ] && grep -q "panicked at" "$TEST_OUTPUT"; then
        echo "test: why tests failed (the first lines of each panic; all of it in $TEST_OUTPUT):"
        awk '/^---- .* stdout ----$/ { name = $2 }
             /panicked at/ { left = 6; print "  " name ":" }
             left > 0 { print "    " substr($0, 1, 400); left-- }' "$TEST_OUTPUT"
    fi
}
trap print_summary EXIT

netns=(unshare -n)
[ "$(id -u)" = 0 ] || netns=(unshare -r -n)
du -sh target 2>/dev/null | sed 's/^/test: target dir: /'
df -h . | tail -1 | sed 's/^/test: disk: /'
echo "test: running the suite inside a loopback-only network namespace"
"${netns[@]}" -- bash -c 'ip link set lo up && exec cargo test --workspace --offline --no-fail-fast -- --test-threads=2' \
    2>&1 | tee "$TEST_OUTPUT"
