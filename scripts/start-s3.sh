#!/usr/bin/env bash
# Start a local S3-API server (moto) for the ctrflow-storage S3 conformance tests.
#
# The server is moto's own application run through scripts/s3-server.py, which serialises
# state-changing requests: plain moto_server checks If-Match / If-None-Match and stores the object
# without a lock in between, so two conditional PUTs can both win (real S3 never lets them).
#
# Idempotent: creates a venv once, installs moto[server] at a pinned version once, starts the
# server only if nothing answers on the port yet. Prints the variable the tests read:
#
#   eval "$(scripts/start-s3.sh | grep '^export ')"
#   cargo test -p ctrflow-storage
#
# Environment:
#   CTRFLOW_TOOLS_DIR  where the venv, pid and log files live (default ~/.cache/ctrflow-tools)
#   PORT               port to listen on (default 5055)
#   PYTHON             python interpreter used to create the venv (default python3)
# Stop it with: kill "$(cat "${CTRFLOW_TOOLS_DIR:-$HOME/.cache/ctrflow-tools}/moto-${PORT:-5055}.pid")"
set -euo pipefail

MOTO_VERSION="5.2.5"
TOOLS_DIR="${CTRFLOW_TOOLS_DIR:-$HOME/.cache/ctrflow-tools}"
PORT="${PORT:-5055}"
PYTHON="${PYTHON:-python3}"
VENV="$TOOLS_DIR/moto-venv"
PID_FILE="$TOOLS_DIR/moto-$PORT.pid"
LOG_FILE="$TOOLS_DIR/moto-$PORT.log"
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "start-s3: $*" >&2; }

answers() { curl -s -o /dev/null --max-time 2 "$ENDPOINT/"; }

mkdir -p "$TOOLS_DIR"

if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv at $VENV"
    "$PYTHON" -m venv "$VENV"
fi

installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
if [ "$installed" != "$MOTO_VERSION" ] || [ ! -x "$VENV/bin/moto_server" ]; then
    log "installing moto[server]==$MOTO_VERSION into $VENV (found: ${installed:-none})"
    "$VENV/bin/python" -m pip install --quiet "moto[server]==$MOTO_VERSION" >&2
else
    log "moto $MOTO_VERSION already installed"
fi

# A plain moto_server left running by an older version of this script has the racy conditional
# writes described above: replace it rather than reuse it.
if answers && [ -f "$PID_FILE" ] && grep -qa moto_server "/proc/$(cat "$PID_FILE")/cmdline" 2>/dev/null; then
    log "replacing the plain moto_server (pid $(cat "$PID_FILE")) on $ENDPOINT"
    kill "$(cat "$PID_FILE")" 2>/dev/null || true
    for _ in $(seq 1 50); do answers || break; sleep 0.2; done
fi

if answers; then
    log "something already answers on $ENDPOINT; reusing it"
else
    log "starting moto (scripts/s3-server.py) on 127.0.0.1:$PORT (log: $LOG_FILE)"
    nohup "$VENV/bin/python" "$(dirname "$0")/s3-server.py" --host 127.0.0.1 --port "$PORT" \
        >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 100); do
        if answers; then break; fi
        if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            log "the S3 server exited; last log lines:"
            tail -n 20 "$LOG_FILE" >&2
            exit 1
        fi
        sleep 0.2
    done
    if ! answers; then
        log "the S3 server did not answer on $ENDPOINT within 20 s; see $LOG_FILE"
        exit 1
    fi
    log "moto running, pid $(cat "$PID_FILE")"
fi

echo "export CTRFLOW_TEST_S3_ENDPOINT=$ENDPOINT"
