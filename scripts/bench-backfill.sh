#!/usr/bin/env bash
# Benchmark of `ctrflow backfill` over generated days at the generator's default load scale
# (20,000 events per day, natural ~20x ad): wall time per simulated day split into read-wait,
# train, evaluate and publish (from the reports the daily job writes), the share of training
# time the trainer waited for data, and peak memory for a short and a long range (it must not
# grow with the number of days). Usage: scripts/bench-backfill.sh [DAYS] (default 14).
# CTRFLOW_BIN=PATH measures that binary instead of building this checkout (to compare builds
# in one session: copy the old build's target/debug/ctrflow aside first).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctrflow-target}"
days="${1:-14}"
ctrflow="${CTRFLOW_BIN:-$CARGO_TARGET_DIR/debug/ctrflow}"
if [ -z "${CTRFLOW_BIN:-}" ]; then
  # Always build: `cargo test` does not refresh target/debug/ctrflow, so one may be stale.
  cargo build --locked --workspace --all-targets
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$ctrflow" -q generate --store "$work/store" --days "$((days + 1))" --start-date 2024-01-01 >/dev/null
half=$(( (days + 1) / 2 ))
run() { # $1 = last date, $2 = label
  /usr/bin/time -f "%M %e" -o "$work/time-$2" \
    "$ctrflow" -q --config configs/bench.toml backfill --store "$work/store" --from 2024-01-02 --to "$1" >/dev/null
}
run "$(date -u -d "2024-01-01 + $half days" +%F)" short
cp -r "$work/store" "$work/store-short"
rm -rf "$work/store/models" "$work/store/embeddings" "$work/store/reports"
run "$(date -u -d "2024-01-01 + $days days" +%F)" long
python3 - "$work" "$days" "$half" <<'PY'
import json, pathlib, sys
work, days, half = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
reports = sorted((work / "store" / "reports").glob("*/metrics.json"))
tot = dict(train_wall=0.0, train_busy=0.0, read_wait=0.0, feature_wait=0.0, shuffle=0.0, evaluate=0.0, publish=0.0)
rows = 0
for r in reports:
    for job in json.loads(r.read_text())["jobs"]:
        for k in tot:
            tot[k] += job["timings"].get(k, 0.0)  # `shuffle`, `feature_wait` are newer than some reports
        rows += job["rows"]
(short_kb, short_s), (long_kb, long_s) = [
    map(float, (work / f"time-{n}").read_text().split()) for n in ("short", "long")]
n = len(reports)
print(f"backfill of {n} days ({rows} training rows): {long_s:.1f} s wall, {long_s / n:.2f} s per day")
print(f"  per day: train {tot['train_wall'] / n:.2f} s (of which waiting for data {tot['read_wait'] / n:.2f} s), "
      f"evaluate {tot['evaluate'] / n:.2f} s, publish {tot['publish'] / n:.2f} s")
wall = max(tot['train_wall'], 1e-9)
print(f"  trainer waiting for data: {tot['read_wait'] / wall:.1%} of training time; "
      f"for the feature stage's work: {tot['feature_wait'] / wall:.1%}; steps {tot['train_busy'] / wall:.1%} "
      f"(the stage's shuffle buffer {tot['shuffle'] / wall:.1%}, overlapping)")
print(f"  training throughput: {rows / max(tot['train_busy'], 1e-9):.0f} rows/s inside steps")
print(f"  peak RSS: {half} days {short_kb / 1024:.0f} MiB, {days} days {long_kb / 1024:.0f} MiB "
      f"(ratio {long_kb / short_kb:.2f}x for {days / half:.2f}x the days)")
PY
