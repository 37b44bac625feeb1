#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (nightly + cargo-fuzz), starting
# from a copy of its committed seeds (fuzz/seeds/<target>) so the seeds are
# not polluted, and prints the CPU seconds each target used (user + system,
# from /usr/bin/time, the build excluded) and whether it found a crash.
#
#   fuzz/run.sh 120            # every target, 2 minutes each
#   fuzz/run.sh 60 driver      # some targets
#
# A crash stops that target; libFuzzer leaves the input in
# fuzz/artifacts/<target>/ (add it to the target's seeds with the fix).
# The targets are built once first (`cargo +nightly fuzz build`).
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift
cd "$(dirname "$0")"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
for t in "${targets[@]}"; do
    nice cargo +nightly fuzz build "$t"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
printf '%-22s %10s %12s %s\n' target wall_s cpu_s result
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    cp -r "seeds/$t/." "$work/$t/" 2>/dev/null || true
    log="$work/$t.log"
    start=$(date +%s)
    if /usr/bin/time -f '%U %S' -o "$work/$t.time" \
        nice cargo +nightly fuzz run "$t" "$work/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see fuzz/artifacts/$t/; log tail below)"
        status=1
    fi
    end=$(date +%s)
    cpu=$(awk '{printf "%.1f", $1 + $2}' "$work/$t.time")
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    printf '%-22s %10s %12s %s (%s runs)\n' "$t" "$((end - start))" "$cpu" "$result" "$runs"
    if [ "$result" != ok ]; then
        tail -30 "$log" | sed 's/^/    /'
    fi
done
exit $status
