#!/usr/bin/env python3
"""Writes the small random-weight Whisper checkpoints the converter tests read,
each produced by the reference library of its format:

  hf-safetensors/   transformers save_pretrained (model.safetensors)
  hf-sharded/       the same, sharded (model.safetensors.index.json + shards)
  hf-bin/           the same state dict through torch.save (pytorch_model.bin;
                    proj_out shares storage with the token embedding)
  hf-bin-sharded/   torch.save shards + pytorch_model.bin.index.json
  openai.pt         openai-whisper layout {"dims", "model_state_dict"} via torch.save
  ct2-float16/      ctranslate2 TransformersConverter, float16
  ct2-int8/         ctranslate2 TransformersConverter, int8 (per-row scales)

All come from one model with fixed seed, so every format must convert to the
same MLX tensors (exactly, or within the int8 step for ct2-int8).

Needs: torch, transformers, safetensors, ctranslate2 (pip). Usage:
  python scripts/make_converter_fixtures.py converters/tests/fixtures/tiny-whisper
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration


def make_model():
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=96, num_mel_bins=8, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_ffn_dim=128, max_source_positions=12, max_target_positions=10,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    model = WhisperForConditionalGeneration(config).eval()
    # Random (not initializer-shaped) values everywhere, norms included.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    model.generation_config.alignment_heads = [[1, 0], [1, 3]]
    return model


def openai_state_dict(model):
    """HF names -> openai-whisper names, as openai-whisper's own modules call them."""
    renames = [
        ("model.", ""), ("encoder.embed_positions.weight", "encoder.positional_embedding"),
        ("decoder.embed_positions.weight", "decoder.positional_embedding"),
        ("decoder.embed_tokens.", "decoder.token_embedding."), ("encoder.layer_norm.", "encoder.ln_post."),
        ("decoder.layer_norm.", "decoder.ln."), (".layers.", ".blocks."),
        (".self_attn_layer_norm.", ".attn_ln."), (".encoder_attn_layer_norm.", ".cross_attn_ln."),
        (".final_layer_norm.", ".mlp_ln."), (".self_attn.", ".attn."), (".encoder_attn.", ".cross_attn."),
        (".q_proj.", ".query."), (".k_proj.", ".key."), (".v_proj.", ".value."), (".out_proj.", ".out."),
        (".fc1.", ".mlp.0."), (".fc2.", ".mlp.2."),
    ]
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "proj_out.weight":
            continue
        for a, b in renames:
            name = name.replace(a, b)
        out[name] = tensor.clone()
    return out


def write_torch_bins(model, configs_from, single, sharded):
    state = model.state_dict()
    for folder in (single, sharded):
        folder.mkdir()
        for name in ("config.json", "generation_config.json"):
            shutil.copy(configs_from / name, folder / name)
    torch.save(state, single / "pytorch_model.bin")
    names = list(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    weight_map = {}
    for file, keys in halves.items():
        torch.save({k: state[k] for k in keys}, sharded / file)
        weight_map.update({k: file for k in keys})
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def main(dest):
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    model = make_model()
    c = model.config
    model.save_pretrained(dest / "hf-safetensors", safe_serialization=True)
    model.save_pretrained(dest / "hf-sharded", safe_serialization=True, max_shard_size="40KB")
    write_torch_bins(model, dest / "hf-safetensors", dest / "hf-bin", dest / "hf-bin-sharded")
    dims = dict(
        n_mels=c.num_mel_bins, n_audio_ctx=c.max_source_positions, n_audio_state=c.d_model,
        n_audio_head=c.encoder_attention_heads, n_audio_layer=c.encoder_layers, n_vocab=c.vocab_size,
        n_text_ctx=c.max_target_positions, n_text_state=c.d_model, n_text_head=c.decoder_attention_heads,
        n_text_layer=c.decoder_layers,
    )
    torch.save({"dims": dims, "model_state_dict": openai_state_dict(model)}, dest / "openai.pt")

    import ctranslate2

    for quant in ["float16", "int8"]:
        out = dest / f"ct2-{quant}"
        ctranslate2.converters.TransformersConverter(str(dest / "hf-safetensors")).convert(
            str(out), quantization=quant, force=True
        )
    (dest / "README").write_text(
        "Random-weight Whisper fixtures written by scripts/make_converter_fixtures.py; see its docstring.\n"
    )
    print(json.dumps(dims))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "converters/tests/fixtures/tiny-whisper")
