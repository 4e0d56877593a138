#!/usr/bin/env python3
"""Reference log-mel features of Parakeet's front end, computed by
parakeet-mlx 0.6.0's own `get_logmel` (its port of NeMo's
AudioToMelSpectrogramPreprocessor) on the MLX CPU wheel, float32.

PreprocessArgs are those of the NeMo FastConformer checkpoints
(parakeet-tdt-0.6b-v2 and its family): 16 kHz, 25 ms Hann windows every
10 ms, 512-point FFT, per-feature normalization, no dither (parakeet-mlx
never applies it), preemphasis 0.97, power 2; 128 mels (0.6b-v2/v3) and
80 mels (the 1.1b models).

Audio is ../shared/data/audio/jfk.wav (16-bit PCM read as int16 / 32768).
Writes one compressed .npz:
  clips       [C, 2]  (first sample, length) of each clip
  mel128_<c>  [frames, 128] features of clip c (0 and 1) with 128 mels
  mel80_0     [frames, 80]  features of clip 0 with 80 mels
  other80_0   [frames, 80]  clip 0, 80 mels, the other settings: Hamming
              window, normalized over all features, magnitude (power 1),
              no preemphasis
Clip 0 is the first 3 s; clip 1 is 48100 samples from 1 s on, a length
that is not a whole number of hops (parakeet-mlx then yields one frame
more than NeMo's `len // hop + 1`).

Usage:
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_parakeet_fixtures.py \
      ../shared/data/audio/jfk.wav models/tests/fixtures/parakeet-features.npz
"""
import sys
import wave

import mlx.core as mx
import numpy as np
from parakeet_mlx.audio import PreprocessArgs, get_logmel

CLIPS = [(0, 48000), (16000, 48100)]


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        assert w.getframerate() == 16000
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def args(features, **changes):
    fields = dict(
        sample_rate=16000,
        normalize="per_feature",
        window_size=0.025,
        window_stride=0.01,
        window="hann",
        features=features,
        n_fft=512,
        dither=1e-5,
        pad_to=0,
        pad_value=0.0,
    )
    fields.update(changes)
    return PreprocessArgs(**fields)


def logmel(audio, clip, a):
    start, length = CLIPS[clip]
    mel = np.array(get_logmel(mx.array(audio[start : start + length]), a)[0])
    assert mel.dtype == np.float32 and np.isfinite(mel).all()
    return mel


def main(wav_path, out_path):
    mx.set_default_device(mx.cpu)
    audio = read_wav(wav_path)
    out = {"clips": np.array(CLIPS, dtype=np.int64)}
    for features, clips in ((80, [0]), (128, [0, 1])):
        for c in clips:
            out[f"mel{features}_{c}"] = logmel(audio, c, args(features))
    other = args(
        80, window="hamming", normalize="all_features", mag_power=1.0, preemph=None
    )
    out["other80_0"] = logmel(audio, 0, other)
    np.savez_compressed(out_path, **out)
    for k, v in out.items():
        print(k, v.shape)


if __name__ == "__main__":
    main(*sys.argv[1:])
