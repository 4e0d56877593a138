#!/usr/bin/env python3
"""Reference outputs of pyannote's 2022 segmentation model (PyanNet) for the
MLX port's parity test, computed by pyannote.audio itself (fp32, CPU) from
the registry checkpoint (whisperx 3.8.6's pytorch_model.bin).

The float64 run tells the port's rounding from pyannote's own: a few SincNet
channels (the sine filters near Nyquist) respond at ~1e-4 of the signal, so
fp32 rounding in their 251-tap sums, magnified by the instance norm, moves
their normalized output by ~1e-3 in any fp32 implementation (pyannote's fp32
run differs from its float64 run by 5e-4 there).

The network is pyannote.audio's own PyanNet class, built from the
checkpoint's `hyper_parameters` and task specifications and given its
`state_dict`. `Model.from_pretrained` is not used because Lightning's loader
imports omegaconf (referenced by the checkpoint's training state), which the
peer venv lacks; those classes are stubbed here while unpickling, and nothing
the network needs lives in them.

Writes one .npz with, for chunks of ../shared/data/diarization/sample.wav
and meeting-4spk/mixture.wav (16-bit PCM read as int16 / 32768):
  chunk_file      [B]  0 = sample.wav, 1 = meeting-4spk/mixture.wav
  chunk_start     [B]  first sample of each 5 s chunk
  outputs         [B, 293, 3] speaker probabilities (sigmoid), fp32
  outputs_f64     the same from the network run in float64 (stored as f32)
  sincnet_f64     [2, 293, 60] SincNet output of the first two chunks, run
                  in float64 (frames first, as the MLX port lays it out)
  short_file, short_start, short_samples  a 3 s chunk of sample.wav
  short_outputs   [1, num_frames(48000), 3], fp32
  filters         [80, 251] the sinc filter bank as asteroid computes it
  num_frames      [samples, frames] pairs from `model.num_frames`
  receptive_field [start, duration, step] of `model.receptive_field`, in seconds

Usage (peer venv with pyannote.audio 4):
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_segmentation_fixtures.py \
      ~/.cache/mlx-asr/models/asset-pyannote-segmentation/pytorch_model.bin \
      ../shared/data/diarization models/tests/fixtures/segmentation.npz
"""
import pickle
import sys
import types
import wave
from pathlib import Path

import numpy as np
import torch
from pyannote.audio.models.segmentation import PyanNet

CHUNK = 80000
CHUNKS = [(0, 0), (0, 160000), (0, 360000), (1, 80000), (1, 480000), (1, 832000)]
FILES = ["sample.wav", "meeting-4spk/mixture.wav"]
SHORT = (0, 192000, 48000)


class _Stub:
    """Stands in for a class the peer venv cannot import (omegaconf's)."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.split(".")[0] == "omegaconf":
            return type(name, (_Stub,), {})
        return super().find_class(module, name)


def load_model(checkpoint):
    pickle_module = types.SimpleNamespace(Unpickler=_Unpickler, load=pickle.load, __name__="pickle")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False, pickle_module=pickle_module)
    hp = ckpt["hyper_parameters"]
    model = PyanNet(sincnet=hp["sincnet"], lstm=hp["lstm"], linear=hp["linear"],
                    sample_rate=hp["sample_rate"], num_channels=hp["num_channels"])
    model.specifications = ckpt["pyannote.audio"]["specifications"]
    model.build()
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval()


def read_wav(path):
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def main(checkpoint, data, out):
    model = load_model(checkpoint)
    audio = [read_wav(Path(data) / f) for f in FILES]
    batch = torch.from_numpy(np.stack([audio[f][s:s + CHUNK] for f, s in CHUNKS]))[:, None]
    f, s, n = SHORT
    short = torch.from_numpy(audio[f][s:s + n].copy())[None, None]
    with torch.inference_mode():
        outputs = model(batch)
        short_outputs = model(short)
        filters = model.sincnet.conv1d[0].filterbank.filters()[:, 0]
        model.double()
        outputs_f64 = model(batch.double()).float()
        sincnet_f64 = model.sincnet(batch[:2].double()).transpose(1, 2).float()
    rf = model.receptive_field
    num_frames = [[k, model.num_frames(k)] for k in (80000, 48000, 16000, 1000, 991)]
    np.savez_compressed(
        out,
        chunk_file=np.array([c[0] for c in CHUNKS], dtype=np.int64),
        chunk_start=np.array([c[1] for c in CHUNKS], dtype=np.int64),
        outputs=outputs.numpy(),
        outputs_f64=outputs_f64.numpy(),
        sincnet_f64=sincnet_f64.numpy(),
        short_file=np.array(f, dtype=np.int64),
        short_start=np.array(s, dtype=np.int64),
        short_samples=np.array(n, dtype=np.int64),
        short_outputs=short_outputs.numpy(),
        filters=filters.numpy(),
        num_frames=np.array(num_frames, dtype=np.int64),
        receptive_field=np.array([rf.start, rf.duration, rf.step], dtype=np.float64),
    )
    print("outputs", tuple(outputs.shape), "short", tuple(short_outputs.shape),
          "receptive field", rf, "num_frames", num_frames, file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:4])
