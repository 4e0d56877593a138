#!/usr/bin/env python3
"""Reference decodes of Parakeet's heads (TDT, RNN-T, CTC) by parakeet-mlx
0.6.0 on the MLX CPU wheel, float32, on tiny random models.

Each model is built by `parakeet_mlx.utils.from_config` from a NeMo-style
config dict (seeded; d_model 32, a 2-layer prediction LSTM, 30 pieces of a
SentencePiece-like vocabulary with ▁ word markers and a <0x0A> byte piece),
and its decoder is run on a seeded random encoder output [1, T, 32]
(the encoder itself is not exercised: its weights are left out).

Writes, under models/tests/fixtures/:
  parakeet_dec_tdt/, parakeet_dec_rnnt/, parakeet_dec_ctc/, and
  parakeet_dec_tdt_q8/ (a TDT head, 32-wide prediction and 64-wide joint,
  its linear layers and embedding quantized by mlx.nn.quantize, 8 bits in
  groups of 32, `quantization` in its config.json), each with
    config.json          the config dict (our ParakeetConfig reads it)
    weights.safetensors  the head's parameters as parakeet-mlx names them
                         (tree_flatten(model.parameters()) minus encoder.*)
    reference.npz
      encoded      [1, T, 32] f32  the encoder output decoded
      tokens       [N] i64  token ids parakeet-mlx's greedy decode emits
      starts       [N] i64  each token's start frame
      frames       [N] i64  each token's duration in frames
      confidence   [N] f32  parakeet-mlx's entropy-based confidence
    TDT and RNN-T also:
      joint_logits [K, C] f32  the joint's outputs of the first K steps
      joint_frames [K] i64     the encoder frame of each of those steps
      joint_prefix [K] i64     how many tokens were emitted before it
    CTC also:
      log_probs    [T, V+1] f32  the head's log-softmax output
    reference.txt        tokenizer.decode(tokens).strip(), what
                         parakeet-mlx's AlignedResult.text holds

The CTC input is checked to hold no "a, blank, a" run: parakeet-mlx merges
such repeats across a blank, which standard CTC (and NeMo) do not.

With `--real DIR` it instead writes, outside the repository (36 MB), a
random TDT head at parakeet-tdt-0.6b-v2's dimensions (1024 pieces, a
2-layer 640-wide prediction network, 640-wide joint, encoder width 1024,
durations 0-4, max_symbols 10) as DIR/config.json, DIR/weights.safetensors
and DIR/reference.npz (encoded [1, 125, 1024]: 10 s of frames; tokens,
starts, frames; seconds: parakeet-mlx's decode time, best of 3), its blank
logit raised so that about 40 tokens come out, for the ignored test
`tdt_real_dimensions_speed` (`PARAKEET_TDT_REAL=DIR`). `--real DIR 8`
quantizes its joint and embedding first (8 bits, groups of 64).

Usage (from the repository root):
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_parakeet_decoder_fixtures.py
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_parakeet_decoder_fixtures.py --real DIR [BITS]
"""
import json
import os
import sys
import time

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from parakeet_mlx import tokenizer
from parakeet_mlx.rnnt import JointNetwork
from parakeet_mlx.utils import from_config

OUT = "models/tests/fixtures"
T = 48
D_MODEL = 32
TIME_RATIO = 8 * 160 / 16000
K = 8

VOCAB = [
    "<unk>", "▁the", "▁a", "s", "▁c", "at", "▁d", "og", "▁is", ".",
    "▁h", "e", "llo", "▁w", "or", "ld", "<0x0A>", "!", "?", "▁run",
    "ing", "▁", "t", "o", "n", "▁sp", "eak", "er", ",", "'",
]

PREPROCESSOR = dict(
    sample_rate=16000, normalize="per_feature", window_size=0.025,
    window_stride=0.01, window="hann", features=80, n_fft=512, dither=1e-5,
    pad_to=0, pad_value=0.0,
)
ENCODER = dict(
    feat_in=80, n_layers=1, d_model=D_MODEL, n_heads=2, ff_expansion_factor=2,
    subsampling_factor=8, self_attention_model="rel_pos",
    subsampling="dw_striding", conv_kernel_size=9,
    subsampling_conv_channels=16, pos_emb_max_len=512,
)


def transducer_config(durations, pred_hidden=24, joint_hidden=40):
    cfg = dict(
        target="nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
        preprocessor=PREPROCESSOR,
        encoder=ENCODER,
        decoder=dict(
            blank_as_pad=True, vocab_size=len(VOCAB),
            prednet=dict(pred_hidden=pred_hidden, pred_rnn_layers=2),
        ),
        joint=dict(
            num_classes=len(VOCAB), vocabulary=VOCAB,
            jointnet=dict(joint_hidden=joint_hidden, activation="relu",
                          encoder_hidden=D_MODEL, pred_hidden=pred_hidden),
            num_extra_outputs=len(durations) if durations else 0,
        ),
        decoding=dict(greedy=dict(max_symbols=3)),
    )
    if durations:
        cfg["decoding"].update(model_type="tdt", durations=durations)
        cfg["model_defaults"] = dict(tdt_durations=durations)
    return cfg


CTC_CONFIG = dict(
    target="nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
    preprocessor=PREPROCESSOR,
    encoder=ENCODER,
    decoder=dict(feat_in=D_MODEL, num_classes=-1, vocabulary=VOCAB),
    decoding=dict(greedy=dict()),
)


def favour_blank(layer, blank, amount):
    """Raises the random head's blank logit so that decodes look like
    speech's: mostly blanks between tokens."""
    layer.bias = layer.bias + amount * (mx.arange(layer.bias.shape[0]) == blank)


def frames(seconds):
    return int(round(seconds / TIME_RATIO))


def write(name, cfg, model, encoded, tokens, extra):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)
    params = {
        k: v for k, v in tree_flatten(model.parameters())
        if not k.startswith("encoder.")
    }
    mx.save_safetensors(os.path.join(folder, "weights.safetensors"), params)
    ids = [t.id for t in tokens]
    out = dict(
        encoded=np.array(encoded),
        tokens=np.array(ids, dtype=np.int64),
        starts=np.array([frames(t.start) for t in tokens], dtype=np.int64),
        frames=np.array([frames(t.duration) for t in tokens], dtype=np.int64),
        confidence=np.array([t.confidence for t in tokens], dtype=np.float32),
    )
    text = tokenizer.decode(ids, VOCAB).strip()
    with open(os.path.join(folder, "reference.txt"), "w") as f:
        f.write(text)
    out.update(extra)
    np.savez_compressed(os.path.join(folder, "reference.npz"), **out)
    print(name, len(ids), "tokens; durations", sorted(set(out["frames"])),
          repr(text))


def transducer(name, durations, seed, scale, blank_bias, quantize=None, **dims):
    mx.random.seed(seed)
    cfg = transducer_config(durations, **dims)
    model = from_config(json.loads(json.dumps(cfg)))
    favour_blank(model.joint.joint_net[2], len(VOCAB), blank_bias)
    if quantize:
        group_size, bits = quantize
        nn.quantize(
            model, group_size=group_size, bits=bits,
            class_predicate=lambda path, m: (
                not path.startswith("encoder") and hasattr(m, "to_quantized")
            ),
        )
        cfg["quantization"] = dict(group_size=group_size, bits=bits)
    encoded = mx.random.normal((1, T, D_MODEL)) * scale
    calls = []
    joint_call = JointNetwork.__call__

    def recording(self, enc, pred):
        out = joint_call(self, enc, pred)
        calls.append((np.array(enc).reshape(-1), np.array(out).reshape(-1)))
        return out

    JointNetwork.__call__ = recording
    try:
        [tokens], _ = model.decode(encoded)
    finally:
        JointNetwork.__call__ = joint_call
    enc_rows = np.array(encoded)[0]
    blank = len(VOCAB)
    joint_frames, joint_prefix, emitted = [], [], 0
    for enc, logits in calls[:K]:
        joint_frames.append(int(np.abs(enc_rows - enc).sum(axis=1).argmin()))
        joint_prefix.append(emitted)
        emitted += int(np.argmax(logits[: blank + 1]) != blank)
    extra = dict(
        joint_logits=np.stack([logits for _, logits in calls[:K]]),
        joint_frames=np.array(joint_frames, dtype=np.int64),
        joint_prefix=np.array(joint_prefix, dtype=np.int64),
    )
    write(name, cfg, model, encoded, tokens, extra)


def ctc(seed, scale, blank_bias):
    mx.random.seed(seed)
    model = from_config(json.loads(json.dumps(CTC_CONFIG)))
    favour_blank(model.decoder.decoder_layers[0], len(VOCAB), blank_bias)
    encoded = mx.random.normal((1, T, D_MODEL)) * scale
    log_probs = model.decoder(encoded)
    best = np.array(log_probs[0]).argmax(axis=1)
    blank = len(VOCAB)
    kept = [(t, b) for t, b in enumerate(best) if b != blank]
    for (t0, a), (t1, b) in zip(kept, kept[1:]):
        assert not (a == b and t1 > t0 + 1), f"repeat across a blank at {t0}"
    [tokens] = model.decode(encoded, mx.array([T]))
    extra = dict(log_probs=np.array(log_probs[0]))
    write("parakeet_dec_ctc", CTC_CONFIG, model, encoded, tokens, extra)


def real(folder, bits=None):
    vocab = [f"▁w{i}" if i % 3 == 0 else f"p{i}" for i in range(1024)]
    durations = [0, 1, 2, 3, 4]
    cfg = transducer_config(durations)
    cfg["encoder"] = dict(ENCODER, d_model=1024, n_heads=8)
    cfg["decoder"].update(vocab_size=len(vocab),
                          prednet=dict(pred_hidden=640, pred_rnn_layers=2))
    cfg["joint"].update(num_classes=len(vocab), vocabulary=vocab)
    cfg["joint"]["jointnet"].update(joint_hidden=640, encoder_hidden=1024,
                                    pred_hidden=640)
    cfg["decoding"]["greedy"] = dict(max_symbols=10)
    mx.random.seed(5)
    model = from_config(json.loads(json.dumps(cfg)))
    favour_blank(model.joint.joint_net[2], len(vocab), 0.35)
    if bits:
        nn.quantize(
            model, group_size=64, bits=bits,
            class_predicate=lambda path, m: (
                not path.startswith("encoder") and hasattr(m, "to_quantized")
            ),
        )
        cfg["quantization"] = dict(group_size=64, bits=bits)
    encoded = mx.random.normal((1, 125, 1024))
    mx.eval(model.parameters(), encoded)
    seconds = []
    for _ in range(3):
        begin = time.perf_counter()
        [tokens], _ = model.decode(encoded)
        seconds.append(time.perf_counter() - begin)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, ensure_ascii=False)
    mx.save_safetensors(os.path.join(folder, "weights.safetensors"), {
        k: v for k, v in tree_flatten(model.parameters())
        if not k.startswith("encoder.")
    })
    np.savez(
        os.path.join(folder, "reference.npz"),
        encoded=np.array(encoded),
        tokens=np.array([t.id for t in tokens], dtype=np.int64),
        starts=np.array([frames(t.start) for t in tokens], dtype=np.int64),
        frames=np.array([frames(t.duration) for t in tokens], dtype=np.int64),
        seconds=np.array([min(seconds)]),
    )
    print(f"{len(tokens)} tokens in {min(seconds) * 1e3:.1f} ms")


def main():
    mx.set_default_device(mx.cpu)
    transducer("parakeet_dec_tdt", [0, 1, 2, 3, 4], seed=1, scale=1.0, blank_bias=0.2)
    transducer("parakeet_dec_rnnt", None, seed=2, scale=1.0, blank_bias=0.6)
    transducer("parakeet_dec_tdt_q8", [0, 1, 2, 3, 4], seed=4, scale=1.0,
               blank_bias=0.2, quantize=(32, 8), pred_hidden=32, joint_hidden=64)
    ctc(seed=7, scale=1.0, blank_bias=0.6)


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--real":
        mx.set_default_device(mx.cpu)
        real(sys.argv[2], *(int(b) for b in sys.argv[3:]))
    else:
        main()
