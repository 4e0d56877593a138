#!/usr/bin/env python3
"""The peer side of scripts/bench-parakeet: parakeet-mlx 0.6.0 on the MLX CPU
backend, phase by phase, on one converted Parakeet folder (config.json +
weights.safetensors in parakeet-mlx's names, as scripts/bench-parakeet
writes it), and, with --make, the random folder itself.

Modes:
  --make FOLDER            write a random model at parakeet-tdt-0.6b-v2's
                           dimensions (seeded) into FOLDER
  --folder F --audio A     time log-mel, encoder and greedy decoding of A
                           (16 kHz mono WAV), best of --repeat runs; print
                           one JSON line; with --dump, save the encoder
                           output and the decoded tokens (.npz) for the
                           output check against ours

Run with the peers venv: ~/.cache/mlx-asr/peers-venv/bin/python.
"""
import argparse
import json
import time
import wave

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from parakeet_mlx.audio import get_logmel
from parakeet_mlx.utils import from_config

VOCABULARY = 1024
DURATIONS = [0, 1, 2, 3, 4]


def tdt_0_6b_config():
    """parakeet-tdt-0.6b-v2's model config, as NeMo names it, with a made-up
    vocabulary of its size (the real one is not needed for timing)."""
    rng = np.random.default_rng(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = []
    while len(vocabulary) < VOCABULARY:
        piece = "".join(rng.choice(list(letters), rng.integers(1, 6)))
        if rng.random() < 0.4:
            piece = "\u2581" + piece
        if piece not in vocabulary:
            vocabulary.append(piece)
    return {
        "target": "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
        "preprocessor": {
            "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025,
            "window_stride": 0.01, "window": "hann", "features": 128, "n_fft": 512,
            "dither": 1e-05, "pad_to": 0, "pad_value": 0.0,
        },
        "encoder": {
            "feat_in": 128, "n_layers": 24, "d_model": 1024, "n_heads": 8,
            "ff_expansion_factor": 4, "subsampling_factor": 8, "subsampling": "dw_striding",
            "subsampling_conv_channels": 256, "self_attention_model": "rel_pos",
            "conv_kernel_size": 9, "pos_emb_max_len": 5000, "att_context_size": [-1, -1],
            "causal_downsampling": False, "use_bias": True, "xscaling": True,
            "conv_norm_type": "batch_norm",
        },
        "decoder": {
            "blank_as_pad": True, "vocab_size": VOCABULARY,
            "prednet": {"pred_hidden": 640, "pred_rnn_layers": 2},
        },
        "joint": {
            "num_classes": VOCABULARY, "vocabulary": vocabulary, "num_extra_outputs": len(DURATIONS),
            "jointnet": {"joint_hidden": 640, "activation": "relu", "encoder_hidden": 1024,
                         "pred_hidden": 640},
        },
        "decoding": {"model_type": "tdt", "durations": DURATIONS, "greedy": {"max_symbols": 10}},
        "model_defaults": {"tdt_durations": DURATIONS},
    }


def make(folder):
    import os
    mx.random.seed(0)
    config = tdt_0_6b_config()
    model = from_config(config)
    # Random weights at the scale of trained ones (from_config's defaults
    # are fine; batch norm statistics get plausible values).
    params = dict(tree_flatten(model.parameters()))
    for name, value in params.items():
        if name.endswith("running_var"):
            params[name] = mx.random.uniform(0.5, 1.5, value.shape)
        elif name.endswith("running_mean"):
            params[name] = mx.random.normal(value.shape) * 0.1
    os.makedirs(folder, exist_ok=True)
    mx.save_safetensors(os.path.join(folder, "weights.safetensors"), params)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


def load(folder, quantize):
    with open(f"{folder}/config.json") as f:
        config = json.load(f)
    model = from_config(config)
    model.load_weights(f"{folder}/weights.safetensors")
    if quantize == "q8":
        nn.quantize(model, group_size=64, bits=8)
    mx.eval(model.parameters())
    return model


def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return data.astype(np.float32) / 32768.0


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench(args):
    mx.set_default_device(mx.cpu)
    model = load(args.folder, args.quantize)
    audio = mx.array(read_wav(args.audio))
    best = None
    for _ in range(args.repeat):
        mel, t_mel = timed(lambda: mx.eval(m := get_logmel(audio, model.preprocessor_config)) or m)
        (enc, lengths), t_enc = timed(lambda: _encode(model, mel))
        (tokens, _), t_dec = timed(lambda: model.decode(enc, lengths))
        run = {"mel_s": t_mel, "encoder_s": t_enc, "decoder_s": t_dec, "tokens": len(tokens[0])}
        if best is None or run["encoder_s"] + run["decoder_s"] < best["encoder_s"] + best["decoder_s"]:
            best = run
    best["audio_s"] = audio.shape[0] / 16000
    if args.dump:
        np.savez(args.dump, encoder=np.array(enc[0]),
                 tokens=np.array([t.id for t in tokens[0]], dtype=np.int64))
    print(json.dumps(best))


def _encode(model, mel):
    # get_logmel gives [1, frames, mels] already.
    enc, lengths = model.encoder(mel)
    mx.eval(enc, lengths)
    return enc, lengths


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make")
    p.add_argument("--folder")
    p.add_argument("--audio")
    p.add_argument("--quantize", choices=["none", "q8"], default="none")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--dump")
    args = p.parse_args()
    if args.make:
        make(args.make)
    else:
        bench(args)


if __name__ == "__main__":
    main()
