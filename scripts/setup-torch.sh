#!/usr/bin/env bash
# Install PyTorch 2.9.0 from PyPI into a venv, for the two things that need it:
#   - the PyTorch reference of the training benchmark (scripts/torch_reference.py, run by
#     `cargo bench -p ctrflow-models --bench train_throughput`);
#   - the libtorch backend (`--features tch`, burn-tch 0.22.1 needs libtorch 2.9.0): the wheel's
#     torch/ folder is a complete libtorch.
#
# Idempotent. Prints the variables to use:
#
#   eval "$(scripts/setup-torch.sh | grep '^export ')"
#   cargo test -p ctrflow-models --features tch          # the backend conformance test on both
#
# PyPI's Linux wheel is the CUDA build: with its dependencies it is about 4 GB (CUDA libraries
# included; Python's `import torch` needs them even on a CPU-only machine). The CPU paths are
# what ctrflow tests; with a GPU the same install serves `--device cuda:N`.
#
# Environment:
#   CTRFLOW_TOOLS_DIR  where the venv lives (default ~/.cache/ctrflow-tools)
#   PYTHON             python interpreter used to create the venv (default python3)
set -euo pipefail

TORCH_VERSION="2.9.0"
TOOLS_DIR="${CTRFLOW_TOOLS_DIR:-$HOME/.cache/ctrflow-tools}"
PYTHON="${PYTHON:-python3}"
VENV="$TOOLS_DIR/torch-venv"

log() { echo "setup-torch: $*" >&2; }

mkdir -p "$TOOLS_DIR"
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv at $VENV"
    "$PYTHON" -m venv "$VENV"
fi
installed="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)"
if [ "$installed" != "$TORCH_VERSION" ]; then
    log "installing torch==$TORCH_VERSION into $VENV (found: ${installed:-none}; about 4 GB)"
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" numpy >&2
fi
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
libs="$site/torch/lib"
for d in "$site"/nvidia/*/lib; do
    [ -d "$d" ] && libs="$libs:$d"
done
log "torch $TORCH_VERSION ready"
echo "export CTRFLOW_TORCH_PYTHON=$VENV/bin/python"
echo "export LIBTORCH=$site/torch"
echo "export LD_LIBRARY_PATH=$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
