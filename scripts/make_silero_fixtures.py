#!/usr/bin/env python3
"""Silero VAD v6 (silero-vad 6.2.3) references for the Rust Silero tests,
written to pipeline/tests/fixtures/silero-vad.npz:

  <clip>.probs              per-frame speech probabilities (512-sample frames)
                            from faster-whisper 1.2.1's SileroVADModel wrapper
                            running the wheel's silero_vad_16k_sequence.onnx
                            under onnxruntime (1 thread)
  <clip>.<set>.segments     [n, 2] start/end samples from faster-whisper's
                            get_speech_timestamps with option set <set>, its
                            model being that same wrapper
  options.<set>             threshold, neg_threshold (nan: the default),
                            min_speech_ms, max_speech_s, min_silence_ms,
                            speech_pad_ms

The wheel's weights are the model: its silero_vad.jit, .onnx and
_sequence.onnx agree, while its silero_vad_16k.safetensors and
faster-whisper's bundled silero_vad_v6.onnx are two other weight sets (the
script prints how far each is from the wheel's model; only the wheel's
model is asserted).

Clips: jfk (../shared/data/audio/jfk.wav), sample
(../shared/data/diarization/sample.wav), meeting
(../shared/data/diarization/meeting-4spk/mixture.wav; a length that is a
multiple of 512) and gaps: silence, jfk, white noise, silence, the first 7 s
of sample.wav, loud noise, built by `gaps()` here and in the Rust test alike
(the noise is an LCG whose f32 values both languages compute exactly).

Before writing, the probabilities are checked against the wheel's
silero_vad.onnx run frame by frame with its 64-sample context, and against a
plain numpy forward pass of the weights in the wheel's silero_vad.jit (the
network the Rust code implements).

Needs: faster-whisper 1.2.1, onnxruntime, torch, numpy, safetensors (the
peer venv) and the silero-vad 6.2.3 wheel unpacked in a directory:
  pip download silero-vad==6.2.3 --no-deps -d /tmp/x && unzip -d /tmp/x /tmp/x/*.whl
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_silero_fixtures.py \
      ../shared pipeline/tests/fixtures/silero-vad.npz /tmp/x
"""
import math
import sys
import wave
from pathlib import Path

import faster_whisper.vad as fw_vad
import numpy as np
import onnxruntime
import torch
from faster_whisper.vad import SileroVADModel, VadOptions, get_speech_timestamps
from safetensors.numpy import load_file

# name: threshold, neg_threshold, min_speech_ms, max_speech_s, min_silence_ms, speech_pad_ms
OPTION_SETS = {
    "default": (0.5, None, 0, math.inf, 2000, 400),
    "split": (0.5, None, 0, 3.0, 300, 100),
    "strict": (0.6, 0.3, 250, 5.0, 500, 30),
    "forced": (0.4, None, 100, 1.5, 3000, 200),
}


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / np.float32(32768.0)


def lcg_noise(n, amp, seed):
    """Uniform noise in [-amp, amp): 32-bit LCG, top 24 bits as the value."""
    out = np.empty(n, dtype=np.float32)
    x = seed
    for i in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = np.float32(x >> 8) / np.float32(16777216.0)
    return (out - np.float32(0.5)) * np.float32(2.0) * np.float32(amp)


def gaps(jfk, sample):
    zeros = lambda s: np.zeros(int(s * 16000), dtype=np.float32)
    parts = [
        zeros(2.5),
        jfk,
        lcg_noise(3 * 16000, 0.02, 1),
        zeros(1.5),
        sample[: 7 * 16000],
        lcg_noise(2 * 16000 + 500, 0.3, 2),
    ]
    return np.concatenate(parts)


def wheel_probs(onnx_path, audio):
    """silero-vad's own wrapper logic: 512-sample chunks (the last zero
    padded) with the previous chunk's last 64 samples in front, state
    carried."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"], sess_options=opts)
    padded = np.pad(audio, (0, 512 - len(audio) % 512))
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, 64), dtype=np.float32)
    out = []
    for i in range(0, len(padded), 512):
        x = np.concatenate([context, padded[None, i : i + 512]], axis=1)
        p, state = session.run(None, {"input": x, "state": state, "sr": np.array(16000, dtype=np.int64)})
        out.append(p[0, 0])
        context = x[:, -64:]
    return np.array(out, dtype=np.float32)


def numpy_probs(weights, audio):
    """The network on the safetensors weights, in numpy (float64)."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}

    def conv(x, name, stride):  # x [C, L], padding 1
        k = w[f"{name}.weight"]
        x = np.pad(x, ((0, 0), (1, 1)))
        steps = (x.shape[1] - k.shape[2]) // stride + 1
        cols = np.stack([x[:, j * stride : j * stride + k.shape[2]] for j in range(steps)], axis=-1)
        return np.einsum("oik,ikt->ot", k, cols) + w[f"{name}.bias"][:, None]

    padded = np.pad(audio, (0, 512 - len(audio) % 512)).astype(np.float64)
    padded[-64:] = 0.0  # faster-whisper's wrapper zeroes the last frame's tail
    h = np.zeros(128)
    c = np.zeros(128)
    context = np.zeros(64)
    out = []
    sig = lambda v: 1 / (1 + np.exp(-v))
    for i in range(0, len(padded), 512):
        x = np.concatenate([context, padded[i : i + 512]])
        context = padded[i + 448 : i + 512]
        x = np.concatenate([x, x[-2:-66:-1]])  # reflect padding, 64 on the right
        windows = np.stack([x[j * 128 : j * 128 + 256] for j in range(4)], axis=-1)
        spec = np.einsum("ok,kt->ot", w["stft_conv.weight"][:, 0, :], windows)
        mag = np.sqrt(spec[:129] ** 2 + spec[129:] ** 2)
        y = np.maximum(conv(mag, "conv1", 1), 0)
        y = np.maximum(conv(y, "conv2", 2), 0)
        y = np.maximum(conv(y, "conv3", 2), 0)
        y = np.maximum(conv(y, "conv4", 1), 0)[:, 0]
        g = w["lstm_cell.weight_ih"] @ y + w["lstm_cell.bias_ih"] + w["lstm_cell.weight_hh"] @ h + w["lstm_cell.bias_hh"]
        gi, gf, gg, go = np.split(g, 4)
        c = sig(gf) * c + sig(gi) * np.tanh(gg)
        h = sig(go) * np.tanh(c)
        out.append(sig(w["final_conv.weight"][0, :, 0] @ np.maximum(h, 0) + w["final_conv.bias"][0]))
    return np.array(out)


def jit_weights(path):
    """The 16 kHz model's tensors in the .jit, under the safetensors' names."""
    model = dict(torch.jit.load(str(path), map_location="cpu")._model.state_dict())
    names = {
        "stft_conv.weight": "stft.forward_basis_buffer",
        "final_conv.weight": "decoder.decoder.2.weight",
        "final_conv.bias": "decoder.decoder.2.bias",
    }
    for part in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]:
        names[f"lstm_cell.{part}"] = f"decoder.rnn.{part}"
    for i in range(4):
        for part in ["weight", "bias"]:
            names[f"conv{i + 1}.{part}"] = f"encoder.{i}.reparam_conv.{part}"
    return {ours: model[theirs].numpy() for ours, theirs in names.items()}


def main(shared, out, wheel_dir):
    data = Path(shared) / "data"
    jfk = read_wav(data / "audio/jfk.wav")
    sample = read_wav(data / "diarization/sample.wav")
    clips = {
        "jfk": jfk,
        "sample": sample,
        "meeting": read_wav(data / "diarization/meeting-4spk/mixture.wav"),
        "gaps": gaps(jfk, sample),
    }
    wheel = Path(wheel_dir) / "silero_vad/data"
    weights = jit_weights(wheel / "silero_vad.jit")
    other_weights = load_file(str(wheel / "silero_vad_16k.safetensors"))
    bundled = fw_vad.get_vad_model()
    model = SileroVADModel(str(wheel / "silero_vad_16k_sequence.onnx"))
    fw_vad.get_vad_model = lambda: model
    arrays = {}
    for name, (threshold, neg, min_speech, max_speech, min_silence, pad) in OPTION_SETS.items():
        arrays[f"options.{name}"] = np.array(
            [threshold, math.nan if neg is None else neg, min_speech, max_speech, min_silence, pad], dtype=np.float64
        )
    for clip, audio in clips.items():
        pad_to_frames = lambda a: np.pad(a, (0, 512 - len(a) % 512))
        probs = np.asarray(model(pad_to_frames(audio)), dtype=np.float32).reshape(-1)
        ours = numpy_probs(weights, audio)
        theirs = wheel_probs(wheel / "silero_vad.onnx", audio)
        fw_bundled = np.asarray(bundled(pad_to_frames(audio))).reshape(-1)
        safetensors = numpy_probs(other_weights, audio)
        # The wheel's wrapper does not zero the last frame's tail; compare the rest.
        print(
            f"{clip}: {len(audio)} samples, {len(probs)} frames; max |p - numpy(jit)| "
            f"{np.abs(probs - ours).max():.1e}, max |p - wheel onnx| (all but last) "
            f"{np.abs(probs[:-1] - theirs[:-1]).max():.1e}, min |p - 0.5| {np.abs(probs - 0.5).min():.1e}; "
            f"other weights: max |p - faster-whisper's v6 onnx| {np.abs(probs - fw_bundled).max():.2f}, "
            f"max |p - numpy(safetensors)| {np.abs(probs - safetensors).max():.2f}"
        )
        assert np.abs(probs - ours).max() < 1e-5
        assert np.abs(probs[:-1] - theirs[:-1]).max() < 1e-5
        arrays[f"{clip}.probs"] = probs
        for name, (threshold, neg, min_speech, max_speech, min_silence, pad) in OPTION_SETS.items():
            opts = VadOptions(
                threshold=threshold,
                neg_threshold=neg,
                min_speech_duration_ms=min_speech,
                max_speech_duration_s=max_speech,
                min_silence_duration_ms=min_silence,
                speech_pad_ms=pad,
            )
            segments = [(s["start"], s["end"]) for s in get_speech_timestamps(audio, opts)]
            arrays[f"{clip}.{name}.segments"] = np.array(segments, dtype=np.int64).reshape(-1, 2)
            print(f"  {name}: {len(segments)} segments {segments[:5]}{' ...' if len(segments) > 5 else ''}")
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:4])
