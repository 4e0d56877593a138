#!/usr/bin/env bash
# Creates the Python venv that holds the peers `pipeline bench` compares
# against (Python MLX on the CPU wheel, mlx-whisper for the converter's
# interop check). Idempotent; prints the venv's python.
set -euo pipefail
cache="${MLX_ASR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-asr}"
venv="$cache/peers-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mlx.core, mlx_whisper" 2>/dev/null; then
  mkdir -p "$cache"
  rm -rf "$venv.partial"
  python3 -m venv "$venv.partial"
  pip=("$venv.partial/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" "mlx[cpu]==0.32.2" >&2
  # mlx-whisper declares torch but needs it only for its own converter;
  # leave the 5 GB out and install the rest of what it imports.
  "${pip[@]}" --no-deps "mlx-whisper==0.4.3" >&2
  "${pip[@]}" numba numpy tqdm more-itertools tiktoken huggingface_hub scipy >&2
  rm -rf "$venv"
  mv "$venv.partial" "$venv"
fi
echo "$venv/bin/python"
