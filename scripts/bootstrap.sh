#!/usr/bin/env bash
# Installs the system prerequisites of ctrflow on a fresh Debian machine (idempotent):
# a C toolchain (bundled C libraries), curl, python3 with venv (test services), rustfmt/clippy.
set -euo pipefail
log() { echo "bootstrap: $*" >&2; }

missing=()
for pkg in build-essential curl python3-venv pkg-config libssl-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# python3 may come from pyenv rather than Debian: then venv is built in and needs no package.
if [ "${#missing[@]}" -gt 0 ] && [ " ${missing[*]} " = " python3-venv " ] && python3 -m venv --help >/dev/null 2>&1; then
    missing=()
fi
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
command -v cargo >/dev/null || { log "cargo not found: install Rust from https://rustup.rs"; exit 1; }
