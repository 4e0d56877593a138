"""Writes the wav2vec2 parity fixtures under models/tests/fixtures/.

Two tiny random `transformers.Wav2Vec2ForCTC` models (seeded), saved with
`save_pretrained` (safetensors, weight-normed positional convolution under
`parametrizations.weight.original0/1`):

- `wav2vec2-tiny/`: wav2vec2-base's layout (`feat_extract_norm="group"`,
  post-LN encoder);
- `wav2vec2-tiny-stable/`: large/lv60's layout (`feat_extract_norm="layer"`,
  `do_stable_layer_norm=True`, pre-LN encoder);

and `wav2vec2-tiny.npz` with
- `samples` [2, 16000]: one second of seeded noise plus a tone per row;
- `normalized` [2, 16000]: `samples` after `Wav2Vec2FeatureExtractor`'s
  zero-mean unit-variance normalization;
- `logits_group`, `logits_stable` [2, frames, vocab]: each model's CTC
  logits for `normalized` (eval mode, float32).

Run with the peers venv:
    ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_wav2vec2_fixtures.py

With `--base DIR` it instead writes, outside the repository (380 MB), a
random model at wav2vec2-base's dimensions (`Wav2Vec2Config()`'s defaults)
to `DIR/hf/` and `DIR/reference.npz` with `normalized` [1, 160000] (the
first 10 s of jfk.wav, normalized) and `logits` [1, 499, 32], for the
ignored test `base_dimensions_one_window` (`WAV2VEC2_BASE_FIXTURE=DIR`).
"""

import sys
import wave
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "tests" / "fixtures"
JFK = ROOT.parent / "shared" / "data" / "audio" / "jfk.wav"


def tiny_config(stable: bool) -> Wav2Vec2Config:
    return Wav2Vec2Config(
        vocab_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer" if stable else "group",
        do_stable_layer_norm=stable,
        conv_bias=stable,
    )


def randomize(model: torch.nn.Module) -> None:
    # Norm scales and biases start at 1 and 0: random values exercise them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    samples = np.stack(
        [
            0.1 * rng.standard_normal(16000) + 0.3 * np.sin(2 * np.pi * 220 * t),
            0.05 * rng.standard_normal(16000) + 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1,
        ]
    ).astype(np.float32)
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
    normalized = np.stack(
        [extractor(s, sampling_rate=16000, return_tensors="np").input_values[0] for s in samples]
    ).astype(np.float32)
    arrays = {"samples": samples, "normalized": normalized}
    for stable, folder, key in [
        (False, "wav2vec2-tiny", "logits_group"),
        (True, "wav2vec2-tiny-stable", "logits_stable"),
    ]:
        model = Wav2Vec2ForCTC(tiny_config(stable))
        randomize(model)
        model.eval()
        model.save_pretrained(OUT / folder)
        with torch.no_grad():
            logits = model(torch.from_numpy(normalized)).logits
        arrays[key] = logits.numpy().astype(np.float32)
        print(folder, tuple(logits.shape))
    np.savez(OUT / "wav2vec2-tiny.npz", **arrays)


def base(out: Path) -> None:
    torch.manual_seed(0)
    with wave.open(str(JFK)) as f:
        pcm = np.frombuffer(f.readframes(160000), dtype=np.int16)
    samples = pcm.astype(np.float32) / 32768.0
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
    normalized = extractor(samples, sampling_rate=16000, return_tensors="np").input_values
    model = Wav2Vec2ForCTC(Wav2Vec2Config())
    randomize(model)
    model.eval()
    model.save_pretrained(out / "hf")
    with torch.no_grad():
        logits = model(torch.from_numpy(normalized.astype(np.float32))).logits
    np.savez(out / "reference.npz", normalized=normalized.astype(np.float32), logits=logits.numpy())
    print("base", tuple(logits.shape))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--base":
        base(Path(sys.argv[2]))
    else:
        main()
