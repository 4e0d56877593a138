#!/usr/bin/env python3
"""Parity fixtures for Parakeet's FastConformer encoder: a tiny random
parakeet-mlx 0.6.0 model (MLX CPU wheel, float32, seeded) and its encoder's
outputs.

The model is a NeMo-style CTC config (`parakeet_mlx.utils.from_config`):
16 mel bins, d_model 32, 2 conformer layers, 4 heads, feed-forward x4,
dw_striding subsampling x8 with 16 channels, conv kernel 9, full
relative-position attention ("rel_pos"), xscaling on. Every parameter is
random, including layer-norm scales, the pos_bias_u/v Transformer-XL biases
and the batch norms' running statistics (which start at 0 and 1).

Writes
  models/tests/fixtures/parakeet_encoder_tiny/config.json
      the config dict (our ParakeetConfig reads it as it is)
  models/tests/fixtures/parakeet_encoder_tiny/weights.safetensors
      `tree_flatten(model.parameters())`: parakeet-mlx's names and layouts
  models/tests/fixtures/parakeet-encoder-tiny.npz
      features    [2, 251, 16] seeded normal "log-mel" input (an odd frame
                  count: 251 -> 126 -> 63 -> 32 frames)
      subsampled  [2, 32, 32]  `encoder.pre_encode` output
      encoded     [2, 32, 32]  `model.encoder(features)` output
      features_short [1, 100, 16], encoded_short [1, 13, 32]: a second
                  length through the same model
      encoded_local [2, 32, 32] the same model switched to local attention
                  (`set_attention_model("rel_pos_local_attn", (5, 5))`) on
                  `features`

parakeet-mlx's local attention gathers each query's key band with two Metal
kernels, which the CPU cannot run; `band_scores` and `band_mix` below stand
in for them here with plain MLX ops computing what the kernels compute (the
rest of parakeet-mlx's local attention, its padding, position terms and
masks, runs as shipped).

Run from the repository root:
    ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_parakeet_encoder_fixtures.py

With `--real DIR` it instead writes, outside the repository (2.4 GB), a
random model at parakeet-tdt-0.6b-v2's encoder dimensions (128 mels, 24
layers, d_model 1024, 8 heads) to `DIR/config.json` +
`DIR/weights.safetensors` and `DIR/reference.npz` with `features`
[1, 1001, 128] (10 s of frames) and `encoded` [1, 126, 1024], and prints
parakeet-mlx's encoder time, for the ignored test
`real_dimensions_one_window` (`PARAKEET_ENCODER_REAL_FIXTURE=DIR`).
"""

import json
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten
from parakeet_mlx.attention import RelPositionMultiHeadLocalAttention
from parakeet_mlx.utils import from_config

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "models" / "tests" / "fixtures"
FOLDER = FIXTURES / "parakeet_encoder_tiny"
NPZ = FIXTURES / "parakeet-encoder-tiny.npz"

FEAT_IN = 16
VOCAB = [f"t{i}" for i in range(20)]
LOCAL_CONTEXT = (5, 5)

CONFIG = {
    "target": "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
    "preprocessor": {
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "window": "hann",
        "features": FEAT_IN,
        "n_fft": 512,
        "dither": 1e-05,
        "pad_to": 0,
        "pad_value": 0.0,
    },
    "encoder": {
        "feat_in": FEAT_IN,
        "n_layers": 2,
        "d_model": 32,
        "n_heads": 4,
        "ff_expansion_factor": 4,
        "subsampling_factor": 8,
        "self_attention_model": "rel_pos",
        "subsampling": "dw_striding",
        "conv_kernel_size": 9,
        "subsampling_conv_channels": 16,
        "pos_emb_max_len": 5000,
        "causal_downsampling": False,
        "use_bias": True,
        "xscaling": True,
    },
    "decoder": {"feat_in": 32, "num_classes": len(VOCAB), "vocabulary": VOCAB},
    "decoding": {"greedy": None},
}


def band(x, w):
    """x [B, H, S, D] -> [B, H, S, 2w + 1, D]: row s holds x[s - w .. s + w]
    (zeros outside), and whether each of those rows exists [S, 2w + 1]."""
    s = x.shape[2]
    index = mx.arange(s)[:, None] + mx.arange(2 * w + 1)[None, :]
    padded = mx.pad(x, ((0, 0), (0, 0), (w, w), (0, 0)))
    valid = (index >= w) & (index < s + w)
    return padded[:, :, index], valid


def band_scores(self, q, k, w):
    """The `local_qk_perf` kernel: q[s] . k[s + c - w], -inf off the ends."""
    keys, valid = band(k, w)
    scores = (q[:, :, :, None, :] * keys).sum(-1)
    return mx.where(valid, scores, -mx.inf)


def band_mix(self, prob, v, w):
    """The `local_pv_matmul` kernel: sum_c prob[s, c] v[s + c - w], as [B, S, H, D]."""
    values, _ = band(v, w)
    return (prob[..., None] * values).sum(3).transpose(0, 2, 1, 3)


def randomize(model, rng):
    """Every parameter random: norms near their identity, variances positive."""
    params = []
    for name, value in tree_flatten(model.parameters()):
        shape = value.shape
        if name.endswith("running_var"):
            new = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("running_mean") or "pos_bias" in name:
            new = rng.normal(0.0, 0.2, shape)
        elif ("norm" in name) and name.endswith(".weight"):
            new = 1.0 + rng.normal(0.0, 0.1, shape)
        elif name.endswith(".bias"):
            new = rng.normal(0.0, 0.1, shape)
        else:
            # Linear and conv weights: scaled to their fan-in.
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            new = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        params.append((name, mx.array(new.astype(np.float32))))
    model.update(tree_unflatten(params))
    return dict(params)


def real(out: Path) -> None:
    mx.set_default_device(mx.cpu)
    rng = np.random.default_rng(2026)
    config = json.loads(json.dumps(CONFIG))
    config["preprocessor"]["features"] = 128
    config["encoder"].update(
        feat_in=128,
        n_layers=24,
        d_model=1024,
        n_heads=8,
        subsampling_conv_channels=256,
    )
    config["decoder"]["feat_in"] = 1024
    model = from_config(config)
    params = randomize(model, rng)
    features = mx.array(rng.normal(0.0, 1.0, (1, 1001, 128)).astype(np.float32))
    encoded, _ = model.encoder(features)
    mx.eval(encoded)
    for run in range(3):
        start = time.perf_counter()
        again, _ = model.encoder(features)
        mx.eval(again)
        ms = (time.perf_counter() - start) * 1e3
        print(f"parakeet-mlx run {run}: {ms:.0f} ms for 10 s ({ms / 10:.1f} ms per second)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    mx.save_safetensors(str(out / "weights.safetensors"), params)
    np.savez(out / "reference.npz", features=np.array(features), encoded=np.array(encoded))


def main():
    mx.set_default_device(mx.cpu)
    rng = np.random.default_rng(2026)
    model = from_config(CONFIG)
    params = randomize(model, rng)

    features = mx.array(rng.normal(0.0, 1.0, (2, 251, FEAT_IN)).astype(np.float32))
    features_short = mx.array(rng.normal(0.0, 1.0, (1, 100, FEAT_IN)).astype(np.float32))
    lengths = mx.full((2,), 251, dtype=mx.int64)
    subsampled, _ = model.encoder.pre_encode(features, lengths)
    encoded, _ = model.encoder(features)
    encoded_short, _ = model.encoder(features_short)
    mx.eval(subsampled, encoded, encoded_short)

    RelPositionMultiHeadLocalAttention.matmul_qk = band_scores
    RelPositionMultiHeadLocalAttention.matmul_pv = band_mix
    model.encoder.set_attention_model("rel_pos_local_attn", LOCAL_CONTEXT)
    encoded_local, _ = model.encoder(features)
    mx.eval(encoded_local)

    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    mx.save_safetensors(str(FOLDER / "weights.safetensors"), params)
    np.savez_compressed(
        NPZ,
        features=np.array(features),
        subsampled=np.array(subsampled),
        encoded=np.array(encoded),
        features_short=np.array(features_short),
        encoded_short=np.array(encoded_short),
        encoded_local=np.array(encoded_local),
    )
    print("encoded", encoded.shape, "short", encoded_short.shape)
    print("local differs from full by", float(mx.abs(encoded_local - encoded).max()))
    for name in sorted(params):
        print(name, params[name].shape)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--real":
        real(Path(sys.argv[2]))
    else:
        main()
