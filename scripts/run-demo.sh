#!/usr/bin/env bash
# The README's first command: installs prerequisites, builds ctrflow and runs `ctrflow demo` on
# embedded defaults: an in-process Kafka (librdkafka's mock cluster), a local object store under
# ./ctrflow-demo, 8 days of generated two-domain logs produced -> ingested -> closed, the daily
# E-CDCTR schedule on every day (TPM, CPM, A-CTR, gate, publish), then a summary table.
# Extra arguments go to `ctrflow demo` (e.g. --days 14, --brokers HOST:PORT --store URL).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctrflow-target}"
scripts/bootstrap.sh
# Same target set and features as the test command, so the two share one build.
cargo build --locked --workspace --all-targets
ctrflow="$CARGO_TARGET_DIR/debug/ctrflow"
"$ctrflow" --config configs/demo.toml demo --dir ./ctrflow-demo "$@"
