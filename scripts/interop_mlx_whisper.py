#!/usr/bin/env python3
"""Shows that a folder written by `pipeline convert` loads and transcribes in
Python mlx-whisper, unchanged.

Usage: interop_mlx_whisper.py MODEL_DIR AUDIO.wav
Run it with the peers venv (scripts/setup-peers.sh installs mlx-whisper).
The WAV must be 16 kHz PCM (mono or multi-channel, which is averaged), so
no ffmpeg is needed.
"""
import sys
import wave

import numpy as np
import mlx_whisper


def read_wav_16k(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000:
            sys.exit(f"{path}: {w.getframerate()} Hz, this script needs 16 kHz")
        if w.getsampwidth() != 2:
            sys.exit(f"{path}: {8 * w.getsampwidth()}-bit samples, this script needs 16-bit PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        pcm = pcm.reshape(-1, w.getnchannels()).mean(axis=1)
    return (pcm / 32768.0).astype(np.float32)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, audio = sys.argv[1], sys.argv[2]
    result = mlx_whisper.transcribe(
        read_wav_16k(audio), path_or_hf_repo=model_dir, temperature=0.0, fp16=False, verbose=None
    )
    print(result["text"].strip())


if __name__ == "__main__":
    main()
