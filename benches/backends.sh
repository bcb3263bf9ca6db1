#!/usr/bin/env bash
# The default backend against `aws-lc` (issue 19) in one run: builds benches/backend.rs
# twice (default features; `--features aws-lc`), then runs the two binaries in alternation
# for ROUNDS rounds (default 5; the first binary of a round alternates too), each run a
# short criterion measurement of X3DH initiate and respond. Prints per workload the median
# over the rounds of each backend's median, the ratio default / aws-lc, and the verdict
# against the issue's targets (respond >= 1.8x, initiate >= 1.5x faster with aws-lc).
#
#   bash benches/backends.sh            # 5 rounds, about 2 minutes after the builds
#   ROUNDS=9 bash benches/backends.sh
#
# Criterion settings of each run (override with CRITERION_ARGS): 1 s warm-up, 2 s
# measurement, 30 samples. Never set target-cpu=native or AVX flags here (RUSTFLAGS is
# cleared): the figures are for the portable build users get.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
rounds="${ROUNDS:-5}"
read -r -a criterion_args <<<"${CRITERION_ARGS:---warm-up-time 1 --measurement-time 2 --sample-size 30 --noplot}"

echo "command: bash benches/backends.sh (ROUNDS=$rounds, criterion: ${criterion_args[*]})"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"

# The path of the bench executable cargo builds for the given feature flags.
build() {
    cargo bench --bench backend --no-run --message-format=json "$@" 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "backend" and m.get("executable"):
        print(m["executable"])'
}

echo "building: cargo bench --bench backend --no-run (default, then --features aws-lc)"
default_bin=$(build)
awslc_bin=$(build --features aws-lc)
if [ -z "$default_bin" ] || [ -z "$awslc_bin" ] || [ "$default_bin" = "$awslc_bin" ]; then
    echo "backends.sh: the two bench builds failed or are the same binary" >&2
    exit 1
fi

results=$(mktemp)
log=$(mktemp)
trap 'rm -f "$results" "$log"' EXIT
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order=("$default_bin" "$awslc_bin"); else order=("$awslc_bin" "$default_bin"); fi
    for bin in "${order[@]}"; do
        # Criterion's progress (stderr) and report go to a log; only the result lines show.
        "$bin" --bench "${criterion_args[@]}" 2>>"$log" | tee -a "$log" | grep '^backend-median ' | tee -a "$results" |
            awk -v r="$round" '{ printf "round %d: %-8s %-14s median %9.2f us  fastest %9.2f us\n", r, $2, $3, $4 / 1000, $5 / 1000 }'
    done
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" <<'EOF'
import statistics, sys
medians, fastest = {}, {}
for line in open(sys.argv[1]):
    _, backend, workload, median, best = line.split()
    medians.setdefault((workload, backend), []).append(float(median))
    fastest.setdefault((workload, backend), []).append(float(best))
targets = {"x3dh_initiate": 1.5, "x3dh_respond": 1.8}
print(f"\nmedian over the rounds of each run's median (µs); ratio = default / aws-lc:")
print(f"  {'workload':<15} {'default':>10} {'aws-lc':>10} {'ratio':>7}  target")
failed = False
for workload, target in targets.items():
    d = medians.get((workload, "default"), [])
    a = medians.get((workload, "aws-lc"), [])
    if not d or not a:
        print(f"  {workload:<15} missing results")
        failed = True
        continue
    dm, am = statistics.median(d), statistics.median(a)
    ratio = dm / am
    verdict = "met" if ratio >= target else "NOT met"
    print(f"  {workload:<15} {dm / 1000:>10.2f} {am / 1000:>10.2f} {ratio:>6.2f}x  >= {target}x: {verdict}")
    # Per round: the ratio of the two runs of the same round.
    per_round = [x / y for x, y in zip(d, a)]
    print(f"  {'':<15} per-round ratios of the medians: " + ", ".join(f"{r:.2f}" for r in per_round))
    # The fastest sample of all rounds: the least disturbed by other load on the machine.
    fd, fa = min(fastest[(workload, "default")]), min(fastest[(workload, "aws-lc")])
    print(f"  {'':<15} fastest samples: {fd / 1000:.2f} / {fa / 1000:.2f} µs = {fd / fa:.2f}x")
sys.exit(1 if failed else 0)
EOF
