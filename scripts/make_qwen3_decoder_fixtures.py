"""Reference outputs for the Qwen3 text decoder of Qwen3-ASR (models/src/qwen3_asr/).

Builds a tiny random Qwen3ASRForConditionalGeneration (seeded torch; text part
configured as Qwen3-ASR configures it: Qwen3 with per-head q/k RMSNorm, RoPE
over halves, grouped-query attention, SwiGLU, tied word embeddings) and writes
under models/tests/fixtures/qwen3_asr_text/:

- model.safetensors: the text model's weights under the checkpoint's own names
  (`model.language_model.*`; the tied `lm_head.weight` is not stored),
- config.json: the text config (Hugging Face names),
- reference.npz:
  - prompt_ids [P] and logits_ids [P, V]: logits of every prompt position,
  - prompt_embeds [P, H] and logits_embeds [P, V]: the same from input embeddings,
  - next_ids [S] and step_logits [S, V]: teacher-forced single-token steps
    after the id prompt (row i: logits after feeding next_ids[i]),
  - greedy_ids [G]: greedy continuation of the id prompt (no EOS stop).

Run: ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_qwen3_decoder_fixtures.py
"""

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

OUT = Path(__file__).resolve().parent.parent / "models/tests/fixtures/qwen3_asr_text"
PREFIX = "model.language_model."

torch.manual_seed(0)
text = dict(
    vocab_size=100,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    tie_word_embeddings=True,
)
audio = dict(
    num_mel_bins=16,
    encoder_layers=1,
    encoder_attention_heads=2,
    encoder_ffn_dim=16,
    d_model=8,
    output_dim=64,
    downsample_hidden_size=4,
)
config = Qwen3ASRConfig(audio_config=audio, text_config=text, tie_word_embeddings=True)
model = Qwen3ASRForConditionalGeneration(config).eval()
# Random weights beyond the initializer's (which leaves norms at one).
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.startswith(PREFIX):
            scale = 0.1 if name.endswith("norm.weight") else 0.2
            base = 1.0 if name.endswith("norm.weight") else 0.0
            p.copy_(base + scale * torch.randn_like(p))
lm = model.model.language_model
assert model.lm_head.weight.data_ptr() == lm.embed_tokens.weight.data_ptr(), "not tied"

OUT.mkdir(parents=True, exist_ok=True)
state = {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith(PREFIX)}
save_file(state, OUT / "model.safetensors")
text_config = config.text_config.to_dict()
keep = [
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
    "rope_parameters", "tie_word_embeddings", "max_position_embeddings",
]
(OUT / "config.json").write_text(json.dumps({k: text_config[k] for k in keep}, indent=2) + "\n")


def logits(**kw):
    with torch.no_grad():
        out = model.model.language_model(**kw, use_cache=True)
        return model.lm_head(out.last_hidden_state)[0], out.past_key_values


P, S, G = 9, 6, 12
prompt_ids = torch.randint(0, text["vocab_size"], (1, P))
logits_ids, cache = logits(input_ids=prompt_ids)
prompt_embeds = 0.5 * torch.randn(1, P, text["hidden_size"])
logits_embeds, _ = logits(inputs_embeds=prompt_embeds)

next_ids = torch.randint(0, text["vocab_size"], (S,))
steps = []
for i, t in enumerate(next_ids):
    pos = torch.tensor([[P + i]])
    out, cache = logits(input_ids=t.view(1, 1), past_key_values=cache, position_ids=pos)
    steps.append(out[0])

with torch.no_grad():
    gen = model.generate(
        input_ids=prompt_ids, max_new_tokens=G, min_new_tokens=G, do_sample=False,
        eos_token_id=None, pad_token_id=0,
    )
greedy = gen[0, P:]
# Greedy by hand on the text model too: generate() must not route through audio.
ids = prompt_ids
for _ in range(G):
    nxt = logits(input_ids=ids)[0][-1].argmax()
    ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
assert torch.equal(ids[0, P:], greedy), (ids[0, P:], greedy)

np.savez(
    OUT / "reference.npz",
    prompt_ids=prompt_ids[0].numpy().astype(np.int64),
    logits_ids=logits_ids.numpy().astype(np.float32),
    prompt_embeds=prompt_embeds[0].numpy().astype(np.float32),
    logits_embeds=logits_embeds.numpy().astype(np.float32),
    next_ids=next_ids.numpy().astype(np.int64),
    step_logits=torch.stack(steps).numpy().astype(np.float32),
    greedy_ids=greedy.numpy().astype(np.int64),
)
print("keys:", sorted(state)[:4], "...", len(state), "tensors")
print("greedy:", greedy.tolist())
