#!/usr/bin/env bash
# Re-runs every benchmark of the workspace at the checked-out commit, each
# beside its peer in the same run (docs/BENCHMARKS.md, "One commit, every
# benchmark"). Output: one section per benchmark on stdout, with the exact
# command before it; the table in BENCHMARKS.md is read off it.
#
#   bash scripts/bench-report.sh [OUT_FILE]
#
# Criterion groups run with a short warm-up and measurement time; the
# examples with the arguments their sections in BENCHMARKS.md give. Takes
# about 30-45 minutes on the 2-core machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/dev/stdout}"
CRIT=(--warm-up-time 1 --measurement-time 3)

run() {
  {
    echo "### \$ $*"
    echo "# commit $(git rev-parse --short HEAD) load $(cut -d' ' -f1 /proc/loadavg) at $(date -u +%H:%M:%S)"
  } >>"$OUT"
  "$@" >>"$OUT" 2>&1 || echo "# exit status $?" >>"$OUT"
  echo >>"$OUT"
}

cargo build --release -q -p undchain-jobfile --example reconcile_bench --example insert_cpu
cargo build --release -q -p undchain-timesync --example precision_sim
cargo build --release -q -p undchain-consensus --example sim
cargo build --release -q -p undchain-roles --example network_sim --example lifecycle_sim
cargo build --release -q -p undchain-node --example transport_bench --bin undchain-node
EX=target/release/examples

# undchain-types: envelopes beside raw ed25519-dalek.
run cargo bench -q -p undchain-types --bench envelope -- "${CRIT[@]}"

# undchain-jobfile: reconciliation beside negentropy and a full transfer.
for args in "--n 10000 --d 100" "--n 10000 --d 1000" "--n 100000 --d 1000" \
  "--n 100000 --d 10000" "--n 1000000 --d 2" "--n 1000000 --d 10000" \
  "--common 100000 --only-local 50 --only-remote 50 --prefix-bits 40" \
  "--common 0 --only-local 0 --only-remote 500000"; do
  # shellcheck disable=SC2086
  run nice "$EX/reconcile_bench" $args --runs 5
done
# undchain-jobfile: inserts (goal: 1,000,000 a second on one core).
for args in "100000 0" "100000 1000" "1000000 0" "1000000 125000"; do
  # shellcheck disable=SC2086
  run nice "$EX/insert_cpu" $args
done

# undchain-timesync: precision beside the Welch-Lynch bound.
run "$EX/precision_sim" --n 10 --f 3 --seed 1

# undchain-consensus: the agreement simulator and the pure core's decisions.
run "$EX/sim" --n 7 --byzantine 2 --seeds 50
run cargo bench -q -p undchain-consensus --bench agreement -- "${CRIT[@]}"

# undchain-ledger: apply block and settlement (criterion).
run cargo bench -q -p undchain-ledger --bench ledger -- "${CRIT[@]}"

# undchain-node: transport beside raw quinn and verify_strict.
run "$EX/transport_bench" --rounds 1000 --burst 20000 --senders 2

# undchain-roles: simulated time per CPU second (goal 200x real time).
for f in "" "--faults"; do
  # shellcheck disable=SC2086
  run "$EX/network_sim" --validators 7 --blocks 30 --seed 1 --requests-per-block 200 --timing $f
done
run "$EX/lifecycle_sim" --validators 4 --partners 3 --clients 3 --blocks 30 --seed 1 --payout-period 20s --faults --seeds 10

# The seeded fault campaign: seeds per CPU second.
run target/release/undchain-node sim --seeds 100 --first-seed 0

# undchain-node: the devnet (jobs a second, commit latency).
for v in 4 7; do
  run target/release/undchain-node devnet --validators "$v" --blocks 60 --load 200 --json --reset --home "/tmp/bench-report-devnet-$v"
done
