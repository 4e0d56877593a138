#!/usr/bin/env python3
"""Tiny Qwen3-ASR checkpoints in the two published layouts, for the
converter's tests (converters/tests/qwen3_asr.rs).

One random `Qwen3ASRForConditionalGeneration` (transformers 5.23, seeded,
cast to bfloat16 as the published checkpoints are) with an audio encoder of
d_model 32 (2 layers, 2 heads, feed-forward 32, 4 conv channels, so the conv
stem's output projection reads 4 x 16 = 64 values), output_dim 64, and a
Qwen3 decoder of hidden size 64 (2 layers, 2 heads, 1 key/value head,
head_dim 32, intermediate 32, 96 tokens, embeddings tied). The sizes let
group sizes 32 and 64 quantize some matrices and not others.

Writes under converters/tests/fixtures/qwen3_asr/:
  hf/        the transformers ("-hf") layout: save_pretrained's config.json
             and model.safetensors (bf16; the tied lm_head left out), plus
             the tokenizer files
  thinker/   the original Qwen layout of the same weights: config.json with
             everything under `thinker_config` (the audio config's
             max_source_positions instead of max_position_embeddings, the
             text config's rope_theta and rope_scaling as Qwen's files have
             them), the tensors renamed (`thinker.audio_tower.*` with the
             projector as proj1/proj2, `thinker.model.*`, and
             `thinker.lm_head.weight`, a copy of the embedding table) in two
             shards model-0000{1,2}-of-00002.safetensors with
             model.safetensors.index.json, plus the tokenizer files
  tokenizer files (both folders): vocab.json and merges.txt of a byte-level
             BPE over a few characters, tokenizer_config.json with the
             chat tokens as added special tokens

Run from the repository root:
    ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_qwen3_checkpoints.py
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

from make_qwen3_asr_fixtures import SPECIAL, write_tokenizer_config

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "converters/tests/fixtures/qwen3_asr"

AUDIO = dict(
    num_mel_bins=128,
    encoder_layers=2,
    encoder_attention_heads=2,
    encoder_ffn_dim=32,
    d_model=32,
    n_window=50,
    n_window_infer=100,
    downsample_hidden_size=4,
    output_dim=64,
    max_position_embeddings=13,
)
TEXT = dict(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    tie_word_embeddings=True,
)
# The tokenizer: single characters, a few merges, the chat format's special
# tokens after them (the model config's audio token is `<|audio_pad|>`'s id).
PIECES = list("abcdehlnorstw") + ["Ġ", "he", "ll", "Ġw", "or"]
MERGES = ["h e", "l l", "Ġ w", "o r"]
AUDIO_TOKEN = len(PIECES) + SPECIAL.index("<|audio_pad|>")


def model() -> Qwen3ASRForConditionalGeneration:
    config = Qwen3ASRConfig(
        audio_config=AUDIO,
        text_config=TEXT,
        audio_token_id=AUDIO_TOKEN,
        timestamp_token_id=94,
        pad_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    m = Qwen3ASRForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return m.to(torch.bfloat16)


def thinker_name(name: str) -> str:
    for hf, qwen in [
        ("model.multi_modal_projector.linear_1.", "thinker.audio_tower.proj1."),
        ("model.multi_modal_projector.linear_2.", "thinker.audio_tower.proj2."),
        ("model.audio_tower.", "thinker.audio_tower."),
        ("model.language_model.", "thinker.model."),
    ]:
        if name.startswith(hf):
            return qwen + name[len(hf) :]
    raise ValueError(name)


def thinker_config(rope_theta: float) -> dict:
    audio = {k: v for k, v in AUDIO.items() if k != "max_position_embeddings"}
    audio.update(max_source_positions=1500, conv_chunksize=500, model_type="qwen3_asr_audio_encoder")
    text = dict(TEXT, rope_theta=rope_theta, rms_norm_eps=1e-6, model_type="qwen3_asr_text")
    text["rope_scaling"] = {"interleaved": True, "mrope_section": [8, 4, 4], "rope_type": "default"}
    return {
        "architectures": ["Qwen3ASRForConditionalGeneration"],
        "model_type": "qwen3_asr",
        "thinker_config": {
            "audio_config": audio,
            "text_config": text,
            "audio_token_id": AUDIO_TOKEN,
            "audio_start_token_id": len(PIECES) + SPECIAL.index("<|audio_start|>"),
            "audio_end_token_id": len(PIECES) + SPECIAL.index("<|audio_end|>"),
            "model_type": "qwen3_asr_thinker",
        },
    }


def write_tokenizer(folder: Path) -> None:
    vocab = {p: i for i, p in enumerate(PIECES)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    write_tokenizer_config(folder, len(PIECES))


def main() -> None:
    m = model()
    hf = OUT / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    m.save_pretrained(hf)
    for extra in hf.iterdir():
        if extra.name not in ("config.json", "model.safetensors"):
            extra.unlink()
    write_tokenizer(hf)

    state = {k: v.contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"}
    thinker = {thinker_name(k): v.clone() for k, v in state.items()}
    thinker["thinker.lm_head.weight"] = thinker["thinker.model.embed_tokens.weight"].clone()
    folder = OUT / "thinker"
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(thinker)
    shards = {
        "model-00001-of-00002.safetensors": [n for n in names if "audio_tower" in n],
        "model-00002-of-00002.safetensors": [n for n in names if "audio_tower" not in n],
    }
    weight_map = {}
    for shard, members in shards.items():
        save_file({n: thinker[n] for n in members}, folder / shard, metadata={"format": "pt"})
        weight_map.update({n: shard for n in members})
    index = {"metadata": {"total_size": sum(v.numel() * 2 for v in thinker.values())},
             "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    (folder / "config.json").write_text(json.dumps(thinker_config(m.config.text_config.rope_parameters["rope_theta"]), indent=1))
    write_tokenizer(folder)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
