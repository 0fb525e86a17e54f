#!/usr/bin/env bash
# The README's first command: installs prerequisites, builds ctrflow and runs the main job on
# embedded defaults: generate a week of synthetic two-domain logs into ./ctrflow-demo and print a
# SQL summary of what landed. Extra arguments go to `ctrflow generate` (e.g. --days 14).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctrflow-target}"
scripts/bootstrap.sh
# Same target set and features as the test command, so the two share one build.
cargo build --locked --workspace --all-targets
ctrflow="$CARGO_TARGET_DIR/debug/ctrflow"
store="${CTRFLOW_DEMO_STORE:-./ctrflow-demo}"
"$ctrflow" --config configs/demo.toml generate --store "$store" "$@"
"$ctrflow" --config configs/demo.toml sql --store "$store" "
  SELECT domain, CAST(event_time AS DATE) AS day, count(*) AS events,
         round(avg(CAST(label AS DOUBLE)), 4) AS ctr,
         round(avg(array_length(hist_item_ids)), 1) AS mean_seq_len,
         count(DISTINCT user_id) AS users
  FROM (SELECT * FROM natural UNION ALL SELECT * FROM ad)
  GROUP BY domain, day ORDER BY domain, day"
echo "archive written to $store (try: $ctrflow sql --store $store \"SELECT * FROM ad LIMIT 3\")"
