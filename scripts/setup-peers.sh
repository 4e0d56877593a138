#!/usr/bin/env bash
# Creates the Python venv of the peers: Python MLX on the CPU wheel (for
# `cargo bench --bench mlx_binding`), mlx-whisper (converter interop check), openai-whisper on
# PyTorch CPU (reference transcripts for fixtures) and faster-whisper
# (CTranslate2) — the tools scripts/bench-peers compares against — and the
# voice-activity and diarization references (onnxruntime for Silero's ONNX
# export, resemblyzer, pyannote.audio, pyannote.metrics for DER) and the
# references of the other model families (transformers, parakeet-mlx).
# Idempotent: rebuilt (atomically, under a temporary name) only when an import
# fails. Prints the venv's python on stdout; pip's output goes to stderr.
# With `--qwen3`, also the Qwen3-ASR peers of scripts/bench-qwen3-asr
# (mlx-audio in a venv of its own, antirez/qwen-asr built from source; see
# below), whose python and binary it prints after.
#
# PyPI only. PyPI's Linux torch is the CUDA build: its libtorch_cpu.so itself
# links libcudart/libcupti, so `--no-deps` torch does not import. We install
# torch's own requirements except triton (1 GB, used only by torch.compile and
# openai-whisper's CUDA kernels): torch + nvidia libraries ≈4.2 GB, the venv
# ≈5 GB, about 1.5 minutes. Everything runs on the CPU. pip warns that torch
# lacks triton; that is expected.
set -euo pipefail
cache="${MLX_ASR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-asr}"
venv="$cache/peers-venv"
check="import mlx.core, mlx_whisper, whisper, faster_whisper, torch, onnxruntime, resemblyzer, pyannote.audio, pyannote.metrics, transformers, parakeet_mlx"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  mkdir -p "$cache"
  rm -rf "$venv.partial"
  python3 -m venv "$venv.partial"
  py="$venv.partial/bin/python"
  pip=("$py" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade pip >&2
  "${pip[@]}" "mlx[cpu]==0.32.2" >&2
  # torch without triton: the wheel alone, then its requirements but triton.
  "${pip[@]}" --no-deps "torch==2.15.0" >&2
  "$py" - >"$venv.partial/torch-reqs.txt" <<'EOF'
import importlib.metadata as md
for req in md.requires("torch"):
    if "extra ==" not in req and not req.startswith("triton"):
        print(req)
EOF
  "${pip[@]}" -r "$venv.partial/torch-reqs.txt" >&2
  # openai-whisper and mlx-whisper: without their triton (openai-whisper's
  # CUDA kernels); the rest of what they import.
  "${pip[@]}" --no-deps "openai-whisper==20250625" "mlx-whisper==0.4.3" >&2
  "${pip[@]}" numba numpy tqdm more-itertools tiktoken huggingface_hub scipy >&2
  "${pip[@]}" "faster-whisper==1.2.1" "ctranslate2==4.8.5" >&2
  # resemblyzer imports webrtcvad, which needs setuptools' pkg_resources.
  "${pip[@]}" "onnxruntime==1.31.1" "resemblyzer==0.1.4" "setuptools<81" \
    "pyannote.audio==4.0.7" "pyannote.metrics==4.2.0" >&2
  # References of the other model families (wav2vec2, Parakeet's front end).
  "${pip[@]}" "transformers==5.23.0" "parakeet-mlx==0.6.0" "sentencepiece==0.2.3" >&2
  "$py" -c "$check"
  rm -rf "$venv"
  mv "$venv.partial" "$venv"
fi
echo "$venv/bin/python"

# Qwen3-ASR peers (scripts/bench-qwen3-asr), only with `--qwen3`: they need a
# network (PyPI) and the antirez/qwen-asr source, and nothing else uses them.
if [[ ${1:-} == --qwen3 ]]; then
  # mlx-audio 0.6.2 pins mlx 0.32.4 (the venv above has 0.32.2, which the
  # MLX binding benchmarks compare against), so it gets a venv of its own.
  qvenv="$cache/qwen3-peer-venv"
  if [ ! -x "$qvenv/bin/python" ] ||
    ! "$qvenv/bin/python" -c "import mlx_audio.stt.models.qwen3_asr, transformers" 2>/dev/null; then
    rm -rf "$qvenv.partial"
    python3 -m venv "$qvenv.partial"
    "$qvenv.partial/bin/python" -m pip install --quiet --disable-pip-version-check \
      "mlx[cpu]==0.32.4" "mlx-audio==0.6.2" >&2
    rm -rf "$qvenv"
    mv "$qvenv.partial" "$qvenv"
  fi
  # antirez/qwen-asr (C, BLAS) built outside this repository from a checkout
  # of its source (QWEN_ASR_SRC: a git directory or work tree; default: a
  # clone of github.com/antirez/qwen-asr), against the OpenBLAS of the
  # scipy-openblas32 wheel that the mlx crate's build fetched (its symbols
  # carry a scipy_ prefix). One change to its source: the offline decoder's
  # fixed 2048-token cap comes from QWEN_MAX_TOKENS, so a benchmark decodes a
  # set number of tokens.
  peer="$cache/peers/qwen-asr"
  blas_dir=$(ls -d "$cache"/scipy-openblas32-*/scipy_openblas32 | head -1)
  if [ ! -x "$peer/qwen_asr" ]; then
    src=${QWEN_ASR_SRC:-}
    rm -rf "$peer.partial"
    mkdir -p "$peer.partial"
    if [ -z "$src" ]; then
      git clone --quiet https://github.com/antirez/qwen-asr "$peer.partial" >&2
    elif [ -d "$src/.git" ] || [ -f "$src/HEAD" ]; then
      git --git-dir="$([ -d "$src/.git" ] && echo "$src/.git" || echo "$src")" archive HEAD |
        tar -x -C "$peer.partial"
    else
      cp -r "$src/." "$peer.partial"
    fi
    sed -i 's/int max_tokens = 2048;/int max_tokens = getenv("QWEN_MAX_TOKENS") ? atoi(getenv("QWEN_MAX_TOKENS")) : 2048;/' \
      "$peer.partial/qwen_asr.c"
    grep -q QWEN_MAX_TOKENS "$peer.partial/qwen_asr.c"
    make -C "$peer.partial" qwen_asr \
      CFLAGS="-O3 -march=native -ffast-math -DUSE_BLAS -DUSE_OPENBLAS -I$blas_dir/include -Dcblas_sgemm=scipy_cblas_sgemm" \
      LDFLAGS="-lm -lpthread -L$blas_dir/lib -lscipy_openblas -Wl,-rpath,$blas_dir/lib" >&2
    rm -rf "$peer"
    mv "$peer.partial" "$peer"
  fi
  echo "$qvenv/bin/python"
  echo "$peer/qwen_asr"
fi
