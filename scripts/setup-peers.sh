#!/usr/bin/env bash
# Creates the Python venv that holds the peers `pipeline bench` compares
# against (Python MLX on the CPU wheel). Idempotent; prints the venv's python.
set -euo pipefail
cache="${MLX_ASR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-asr}"
venv="$cache/peers-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mlx.core" 2>/dev/null; then
  mkdir -p "$cache"
  python3 -m venv "$venv.partial"
  "$venv.partial/bin/python" -m pip install --quiet --disable-pip-version-check "mlx[cpu]==0.32.2" >&2
  rm -rf "$venv"
  mv "$venv.partial" "$venv"
fi
echo "$venv/bin/python"
