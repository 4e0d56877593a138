#!/usr/bin/env python3
"""Parity fixtures for Qwen3-ASR's audio side: transformers 5.23's
`Qwen3ASRFeatureExtractor` on real speech, and a tiny random
`Qwen3ASRForConditionalGeneration` (torch, float32, seeded) whose audio tower
(`Qwen3ASREncoder`) and multimodal projector turn those features into the
embeddings the decoder splices in.

The audio config: 128 mel bins (the feature extractor's), d_model 32,
2 layers, 4 heads, feed-forward 64, 8 conv channels, output_dim 48,
n_window 50 (100-frame chunks, 13 frames each after the conv stem) and
n_window_infer 200, so attention runs in windows of 26 frames (two chunks):
jfk.wav's 143 frames make five full windows and a 13-frame remainder. Every
parameter is random (layer norms included).

Writes
  models/tests/fixtures/qwen3_asr_audio/config.json
      the whole Qwen3ASRConfig (`audio_config` is what the encoder reads)
  models/tests/fixtures/qwen3_asr_audio/model.safetensors
      the audio tower's and projector's tensors of the model's state dict,
      names unchanged (`model.audio_tower.*`, `model.multi_modal_projector.*`;
      torch layouts, conv weights [out, in, kh, kw])
  models/tests/fixtures/qwen3-asr-audio.npz, for clip in (long, short, tiny):
      {clip}_samples   [2] start and length in jfk.wav's samples (long: all
                       of it; short: 21937 samples from 0.5 s, an odd length;
                       tiny: 4801 samples from 1 s, which the extractor pads
                       to its 8000-sample minimum)
      {clip}_mel       [n_frames, 128] the extractor's features (processor
                       defaults: padding="longest"), valid frames only; for
                       the long clip (to keep the file small) only its first
                       and last 150 frames, one after the other
      {clip}_padded    [1] the extractor's padded frame count (a multiple of
                       100; the padding is zeros, checked here)
      {clip}_hidden    [frames, 32] `audio_tower(...).last_hidden_state`
      {clip}_embeds    [frames, 48] `get_audio_features(...).pooler_output`

Run from the repository root:
    ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_qwen3_audio_fixtures.py
"""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file
from transformers import (
    Qwen3ASRConfig,
    Qwen3ASRFeatureExtractor,
    Qwen3ASRForConditionalGeneration,
)

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "models/tests/fixtures/qwen3_asr_audio"
NPZ = ROOT / "models/tests/fixtures/qwen3-asr-audio.npz"
WAV = ROOT / "../shared/data/audio/jfk.wav"


# The audio side of the tiny models (also scripts/make_qwen3_asr_fixtures.py's).
AUDIO_CONFIG = dict(
    num_mel_bins=128,
    encoder_layers=2,
    encoder_attention_heads=4,
    encoder_ffn_dim=64,
    d_model=32,
    n_window=50,
    n_window_infer=200,
    downsample_hidden_size=8,
    output_dim=48,
    max_position_embeddings=13,
)


def tiny_model() -> Qwen3ASRForConditionalGeneration:
    config = Qwen3ASRConfig(
        audio_config=AUDIO_CONFIG,
        text_config=dict(
            vocab_size=64,
            hidden_size=48,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=24,
        ),
        audio_token_id=63,
        timestamp_token_id=62,
        pad_token_id=0,
        eos_token_id=1,
    )
    return randomized(config)


def randomized(config: Qwen3ASRConfig, embedding_std: float | None = None):
    """A seeded random model: norms' weights near 1 and biases near 0,
    the token embedding normal with `embedding_std` when given, every other
    parameter normal over the square root of its fan-in."""
    torch.manual_seed(0)
    model = Qwen3ASRForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if embedding_std is not None and name.endswith("embed_tokens.weight"):
                p.copy_(embedding_std * torch.randn_like(p))
            elif "norm" in name or "ln_post" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn_like(p))
            else:
                fan_in = p.shape[1] if p.dim() > 1 else 1
                fan_in *= p[0, 0].numel() if p.dim() > 2 else 1
                p.copy_(torch.randn_like(p) / np.sqrt(max(fan_in, 1)))
    return model


def main() -> None:
    model = tiny_model()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(OUT_DIR / "config.json")
    audio = {
        k: v.contiguous()
        for k, v in model.state_dict().items()
        if ".audio_tower." in k or ".multi_modal_projector." in k
    }
    assert all(k.startswith("model.") for k in audio), list(audio)
    save_file(audio, OUT_DIR / "model.safetensors")

    samples, rate = sf.read(WAV, dtype="float32")
    assert rate == 16000 and samples.ndim == 1
    clips = {"long": (0, len(samples)), "short": (8000, 21937), "tiny": (16000, 4801)}
    extractor = Qwen3ASRFeatureExtractor()
    arrays = {}
    for clip, (start, length) in clips.items():
        x = samples[start : start + length]
        inputs = extractor(x, sampling_rate=16000, padding="longest", return_attention_mask=True)
        features = inputs["input_features"]
        mask = inputs["attention_mask"]
        n_valid = int(mask.sum())
        padded = features.shape[-1]
        assert padded % 100 == 0 and n_valid == max(length, 8000) // 160
        assert torch.all(features[0, :, n_valid:] == 0)
        with torch.no_grad():
            out = model.model.get_audio_features(features, input_features_mask=mask)
        arrays[f"{clip}_samples"] = np.array([start, length], dtype=np.int64)
        mel = features[0, :, :n_valid].T.numpy().astype(np.float32)
        if clip == "long":
            mel = np.concatenate([mel[:150], mel[-150:]])
        arrays[f"{clip}_mel"] = mel
        arrays[f"{clip}_padded"] = np.array([padded], dtype=np.int64)
        arrays[f"{clip}_hidden"] = out.last_hidden_state.numpy().astype(np.float32)
        arrays[f"{clip}_embeds"] = out.pooler_output.numpy().astype(np.float32)
        print(clip, n_valid, padded, out.last_hidden_state.shape, out.pooler_output.shape)
    np.savez_compressed(NPZ, **arrays)


if __name__ == "__main__":
    main()
