#!/usr/bin/env bash
# Hunts intermittent test failures before CI does: runs the whole test
# suite RUNS times with HOGS CPU hogs (`yes > /dev/null`) running beside
# it, then prints each test that failed, with how many runs it failed in.
#
#   scripts/flakes.sh [-n RUNS] [-k HOGS] [-- NEXTEST-ARGS...]
#
# Defaults: 5 runs, 2 hogs (on 2 cores, the machine at twice its
# capacity). NEXTEST-ARGS narrow the runs, for example
# `-- -E 'binary(sftp)'`. Each run's output is kept in
# target/flakes/run-N.log. Exits 1 when any test failed in any run.
#
# It installs what the tests need when missing, as scripts/test.sh does,
# and builds the tests once before the hogs start. Retries stay off
# (.config/nextest.toml): a test that fails once here is a defect to find,
# in the code or in the test.
set -euo pipefail

cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

runs=5
hogs=2
while [ "$#" -gt 0 ]; do
    case $1 in
    -n) runs=${2:?-n needs a number of runs}; shift 2 ;;
    -k) hogs=${2:?-k needs a number of hogs}; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (usage: scripts/flakes.sh [-n RUNS] [-k HOGS] [-- NEXTEST-ARGS...])" ;;
    esac
done
case $runs$hogs in *[!0-9]*) die "-n and -k take whole numbers" ;; esac
cargo nextest --version >/dev/null 2>&1 ||
    die "scripts/flakes.sh needs cargo-nextest (cargo install cargo-nextest --locked)"

install_test_servers
export VMSSH_REQUIRE_SERVERS=1

step "building the tests"
cargo nextest run --workspace --no-run "$@"

out=target/flakes
rm -rf "$out"
mkdir -p "$out"

hog_pids=()
stop_hogs() {
    local pid
    for pid in "${hog_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    hog_pids=()
}
trap stop_hogs EXIT
for _ in $(seq 1 "$hogs"); do
    yes >/dev/null &
    hog_pids+=("$!")
done

for run in $(seq 1 "$runs"); do
    step "run $run of $runs, $hogs CPU hog(s) beside it (load $(cut -d' ' -f1 /proc/loadavg))"
    log=$out/run-$run.log
    if cargo nextest run --workspace --no-fail-fast "$@" >"$log" 2>&1; then
        echo "passed"
    else
        echo "failed (see $log)"
    fi
    grep -E '^ +Summary ' "$log" || echo "no summary: the run did not finish (see $log)"
    # Status lines before the summary: one per test that did not pass.
    sed '/^ *Summary /q' "$log" |
        grep -E '^ +(FAIL|TIMEOUT|SIGSEGV|SIGABRT|SIGKILL|SIGTERM|ABORT|LEAK-FAIL) \[' |
        awk '{ print $(NF-1), $NF }' |
        sort -u >"$out/failed-$run.txt" || true
done
stop_hogs

cat "$out"/failed-*.txt | sort | uniq -c | sort -rn >"$out/summary.txt"
step "failing tests over $runs run(s) with $hogs hog(s)"
if [ -s "$out/summary.txt" ]; then
    printf '%6s  %s\n' runs test
    awk '{ count = $1; $1 = ""; printf "%6s %s\n", count, $0 }' "$out/summary.txt"
    exit 1
fi
echo "none"
