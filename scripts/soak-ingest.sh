#!/usr/bin/env bash
# Soak test of ingest's exactly-once landing: kill -9 the real `ctrflow ingest` at spread-out
# moments ROUNDS times (default 100; CI runs 10), restarting it each time, against the real
# broker, then check that the landing holds every produced event exactly once.
#
#   scripts/soak-ingest.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctrflow-target}"
scripts/bootstrap.sh
eval "$(scripts/start-broker.sh | grep '^export ')"
export CTRFLOW_TEST_BROKERS CTRFLOW_TEST_TANSU
export CTRFLOW_KILL_ROUNDS="${1:-100}"
echo "soak-ingest: $CTRFLOW_KILL_ROUNDS kill -9 rounds" >&2
cargo test --workspace --all-targets --locked --test integration -- \
    --exact ingest::kill_9_at_random_moments_loses_and_duplicates_nothing --nocapture
