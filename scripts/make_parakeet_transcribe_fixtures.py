#!/usr/bin/env python3
"""A whole tiny random Parakeet TDT model and parakeet-mlx 0.6.0's
transcription of jfk.wav with it (MLX CPU wheel, float32), for the
pipeline's end-to-end test (pipeline/tests/parakeet.rs).

The model (seeded; 16 mel bins, 2 FastConformer layers of width 32, a
2-layer 32-wide prediction LSTM, durations 0-4, a SentencePiece-like
vocabulary of 30 pieces with word starts, word continuations and sentence
punctuation) is written in the mlx-community layout, which `model = PATH`
converts:

  pipeline/tests/fixtures/parakeet-tiny/config.json        NeMo's config names
  pipeline/tests/fixtures/parakeet-tiny/model.safetensors  parakeet-mlx's parameters

and parakeet-mlx's result on ../shared/data/audio/jfk.wav (one window, no
chunking) to pipeline/tests/fixtures/parakeet-jfk.json:
  text                       AlignedResult.text
  tokens                     [{id, start, duration, confidence}] in seconds

The joint's blank logit is raised so that a few dozen tokens come out.

Usage (from the repository root):
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_parakeet_transcribe_fixtures.py
"""
import json
import os
import wave

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from parakeet_mlx.audio import get_logmel
from parakeet_mlx.utils import from_config

OUT = "pipeline/tests/fixtures"
AUDIO = "../shared/data/audio/jfk.wav"
DURATIONS = [0, 1, 2, 3, 4]
VOCAB = [
    "<unk>", "▁the", "▁a", "s", "▁c", "at", "▁d", "og", "▁is", ".",
    "▁h", "e", "llo", "▁w", "or", "ld", "▁you", "!", "?", "▁run",
    "ing", "▁ask", "t", "o", "n", "▁sp", "eak", "er", ",", "'",
]
BLANK_BIAS = 9
JOINT_SCALE = 3
ZERO_DURATION_PENALTY = 3


def config():
    return {
        "target": "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
        "preprocessor": {
            "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025,
            "window_stride": 0.01, "window": "hann", "features": 16, "n_fft": 512,
            "dither": 1e-05, "pad_to": 0, "pad_value": 0.0,
        },
        "encoder": {
            "feat_in": 16, "n_layers": 2, "d_model": 32, "n_heads": 4,
            "ff_expansion_factor": 2, "subsampling_factor": 8, "subsampling": "dw_striding",
            "subsampling_conv_channels": 8, "self_attention_model": "rel_pos",
            "conv_kernel_size": 9, "pos_emb_max_len": 5000, "att_context_size": [-1, -1],
            "causal_downsampling": False, "use_bias": True, "xscaling": True,
        },
        "decoder": {
            "blank_as_pad": True, "vocab_size": len(VOCAB),
            "prednet": {"pred_hidden": 32, "pred_rnn_layers": 2},
        },
        "joint": {
            "num_classes": len(VOCAB), "vocabulary": VOCAB,
            "num_extra_outputs": len(DURATIONS),
            "jointnet": {"joint_hidden": 32, "activation": "relu", "encoder_hidden": 32,
                         "pred_hidden": 32},
        },
        "decoding": {"model_type": "tdt", "durations": DURATIONS, "greedy": {"max_symbols": 10}},
        "model_defaults": {"tdt_durations": DURATIONS},
    }


def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return data.astype(np.float32) / 32768.0


def main():
    mx.set_default_device(mx.cpu)
    mx.random.seed(3)
    cfg = config()
    model = from_config(cfg)
    params = dict(tree_flatten(model.parameters()))
    for name, value in params.items():
        # Without this a random encoder gives nearly the same output at
        # every frame: its biases swamp what the subsampling passes on.
        if name.startswith("encoder.pre_encode") and name.endswith("weight"):
            params[name] = value * 2.2
        elif name.startswith("encoder") and name.endswith(".bias"):
            params[name] = value * 0
        elif name.endswith("running_var"):
            params[name] = mx.random.uniform(0.5, 1.5, value.shape)
        elif name.endswith("running_mean"):
            params[name] = mx.random.normal(value.shape) * 0.1
    params["joint.enc.weight"] = params["joint.enc.weight"] * JOINT_SCALE
    params["joint.pred.weight"] = params["joint.pred.weight"] * 0.2
    params["joint.joint_net.2.weight"] = mx.random.normal(params["joint.joint_net.2.weight"].shape)
    params["joint.joint_net.2.bias"] = mx.zeros(params["joint.joint_net.2.bias"].shape)
    model.load_weights(list(params.items()))
    mel = get_logmel(mx.array(read_wav(AUDIO)), model.preprocessor_config)
    # Each output's mean over jfk's frames is taken off its bias, so that
    # the frames decide which token wins; then blank and duration 0 are
    # made less or more likely.
    encoded, _ = model.encoder(mel)
    logits = model.joint(encoded, mx.zeros((1, 1, 32)))[0, :, 0, :]
    bias = -np.array(logits.mean(axis=0))
    bias[len(VOCAB)] += BLANK_BIAS
    bias[len(VOCAB) + 1 + DURATIONS.index(0)] -= ZERO_DURATION_PENALTY
    params["joint.joint_net.2.bias"] = mx.array(bias)
    model.load_weights(list(params.items()))

    folder = os.path.join(OUT, "parakeet-tiny")
    os.makedirs(folder, exist_ok=True)
    mx.save_safetensors(os.path.join(folder, "model.safetensors"), params)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)

    result = model.generate(mel)[0]
    tokens = [
        {"id": t.id, "start": t.start, "duration": t.duration, "confidence": t.confidence}
        for t in result.tokens
    ]
    with open(os.path.join(OUT, "parakeet-jfk.json"), "w") as f:
        json.dump({"text": result.text, "tokens": tokens}, f, indent=1, ensure_ascii=False)
    print(f"{len(tokens)} tokens: {result.text!r}")


if __name__ == "__main__":
    main()
