#!/usr/bin/env python3
"""Parity fixtures for the whole Qwen3-ASR recognizer: a tiny random
`Qwen3ASRForConditionalGeneration` (transformers 5.23, torch float32, seeded)
with a tiny byte-level BPE tokenizer in the files Qwen's own repositories ship
(vocab.json, merges.txt, tokenizer_config.json with the special tokens), fed
jfk.wav through the prompt Qwen3-ASR is decoded with:

    <|im_start|>system\\n{context}<|im_end|>\\n<|im_start|>user\\n<|audio_start|>
    <|audio_pad|> x N <|audio_end|><|im_end|>\\n<|im_start|>assistant\\n
    [language {Name}<asr_text>]            (only when the language is forced)

The tokenizer is trained here on a few sentences (300 entries, Qwen2's
pre-tokenizer regex); the reference encodings come from transformers'
`Qwen2Tokenizer.from_pretrained` on the written files, so our reading of
those files is checked against theirs.

Writes models/tests/fixtures/qwen3_asr_model/:
  config.json, weights.safetensors   the converted folder (transformers'
                                     names; the output layer untied, so that
                                     greedy tokens do not just repeat the
                                     last one as a random tied table makes
                                     them; the tied head is checked by
                                     qwen3_text_decoder.rs)
  vocab.json, merges.txt, tokenizer_config.json
  reference.npz
    text_{i} / ids_{i}      strings (UTF-8 bytes, as int64) and their token ids
    {case}_prompt           prompt ids (case: auto = no context, language
                            detected; forced = context "Kennedy's inaugural
                            address", language English)
    {case}_prefill          [vocab] logits after the prompt
    {case}_greedy           [24] greedy tokens (end of text suppressed, so
                            the length is fixed)
    {case}_steps            [24, vocab] logits predicting each greedy token
                            (teacher-forced, one forward pass)
    forced_text             the greedy tokens decoded (skip special tokens;
                            UTF-8 bytes as int64)

and models/tests/fixtures/qwen3_asr_tokenizer_json/: the same tokenizer as
transformers saves it (tokenizer.json + tokenizer_config.json).

Run from the repository root:
    ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_qwen3_asr_fixtures.py
"""

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Qwen2Tokenizer,
    Qwen3ASRConfig,
    Qwen3ASRFeatureExtractor,
    Qwen3ASRForConditionalGeneration,
)

from make_qwen3_audio_fixtures import AUDIO_CONFIG, randomized

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models/tests/fixtures/qwen3_asr_model"
OUT_JSON = ROOT / "models/tests/fixtures/qwen3_asr_tokenizer_json"
WAV = ROOT / "../shared/data/audio/jfk.wav"

PRETOKENIZE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
    "<asr_text>",
]
CORPUS = [
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country.",
    "system\nuser\nassistant\nlanguage English<asr_text> language Chinese",
    "Kennedy's inaugural address, January 20, 1961.",
]
TEXTS = [
    "And so my fellow Americans, ask not what your country can do for you.",
    "language English<asr_text>Ask not!",
    "  two  spaces\nand a newline, 1961 and ümlauts — don't",
    "<|im_start|>system\nKennedy<|im_end|>\n",
]
GREEDY = 24


def write_tokenizer() -> int:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.model.save(str(OUT))
    base = tok.get_vocab_size()
    write_tokenizer_config(OUT, base)
    return base


def write_tokenizer_config(folder: Path, first_id: int) -> None:
    """tokenizer_config.json as Qwen's repos have it: the chat format's
    special tokens (SPECIAL) at ids from `first_id` on."""
    added = {
        str(first_id + i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                            "normalized": False, "single_word": False}
        for i, t in enumerate(SPECIAL)
    }
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": added,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")


def tiny_model(vocab: int, audio_token: int, eos: list[int]) -> Qwen3ASRForConditionalGeneration:
    config = Qwen3ASRConfig(
        audio_config=dict(AUDIO_CONFIG, n_window_infer=400),
        text_config=dict(
            vocab_size=vocab,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            tie_word_embeddings=False,
        ),
        audio_token_id=audio_token,
        tie_word_embeddings=False,
        pad_token_id=eos[0],
        eos_token_id=eos,
    )
    # The embedding large next to the layers' outputs, so that each greedy
    # token follows from the one before it rather than repeating.
    return randomized(config, embedding_std=1.0)


def prompt_text(context: str, audio_tokens: int, language: str | None) -> str:
    forced = f"language {language}<asr_text>" if language else ""
    return (
        f"<|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>"
        + "<|audio_pad|>" * audio_tokens
        + f"<|audio_end|><|im_end|>\n<|im_start|>assistant\n{forced}"
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    base = write_tokenizer()
    tokenizer = Qwen2Tokenizer.from_pretrained(str(OUT))
    tokenizer.save_pretrained(str(OUT_JSON))
    for extra in ("vocab.json", "merges.txt"):
        (OUT_JSON / extra).unlink(missing_ok=True)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    assert list(ids.values()) == list(range(base, base + len(SPECIAL))), ids
    vocab = base + len(SPECIAL) + 1  # one row no token names, as Qwen's padded table has
    model = tiny_model(vocab, ids["<|audio_pad|>"], [ids["<|endoftext|>"], ids["<|im_end|>"]])

    model.config.to_json_file(OUT / "config.json")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, OUT / "weights.safetensors")

    arrays = {}
    for i, text in enumerate(TEXTS):
        arrays[f"text_{i}"] = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)
        arrays[f"ids_{i}"] = np.array(tokenizer.encode(text), dtype=np.int64)

    samples, rate = sf.read(WAV, dtype="float32")
    assert rate == 16000
    inputs = Qwen3ASRFeatureExtractor()(
        samples, sampling_rate=16000, padding="longest", return_attention_mask=True
    )
    features, mask = inputs["input_features"], inputs["attention_mask"]
    with torch.no_grad():
        audio_tokens = model.model.get_audio_features(features, input_features_mask=mask).pooler_output.shape[0]
    cases = {"auto": ("", None), "forced": ("Kennedy's inaugural address", "English")}
    for case, (context, language) in cases.items():
        prompt = tokenizer.encode(prompt_text(context, audio_tokens, language))
        arrays[f"{case}_prompt"] = np.array(prompt, dtype=np.int64)
        input_ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                input_features=features,
                input_features_mask=mask,
                max_new_tokens=GREEDY,
                min_new_tokens=GREEDY,
                do_sample=False,
            )
            greedy = out[0, len(prompt):]
            full = torch.cat([input_ids[0], greedy[:-1]])[None]
            logits = model(
                input_ids=full, input_features=features, input_features_mask=mask
            ).logits[0]
        steps = logits[len(prompt) - 1 :].numpy().astype(np.float32)
        assert (steps.argmax(-1) == greedy.numpy()).all()
        arrays[f"{case}_prefill"] = steps[0]
        arrays[f"{case}_greedy"] = greedy.numpy().astype(np.int64)
        arrays[f"{case}_steps"] = steps
        if case == "forced":
            text = tokenizer.decode(greedy, skip_special_tokens=True)
            arrays["forced_text"] = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)
        print(case, len(prompt), greedy.tolist())
    np.savez_compressed(OUT / "reference.npz", **arrays)


if __name__ == "__main__":
    main()
