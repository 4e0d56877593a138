#!/usr/bin/env python3
"""The peer side of scripts/bench-qwen3-asr: mlx-audio 0.6.2's Qwen3-ASR on
the MLX CPU backend, phase by phase, and, with --make, the random
Qwen3-ASR-0.6B checkpoint every implementation in that benchmark reads.

Modes:
  --make FOLDER            write a random model at Qwen3-ASR-0.6B's dimensions
                           (seeded) in the original Qwen "thinker" layout:
                           model.safetensors (BF16, with thinker.lm_head.weight
                           equal to the embedding, as the released file has it),
                           config.json (thinker_config), preprocessor_config.json,
                           and a synthetic byte-level BPE tokenizer (vocab.json,
                           merges.txt, tokenizer_config.json) of the real size with
                           the special tokens at their real ids
  --antirez BIN --folder F --audio A
                           time antirez/qwen-asr (built by scripts/setup-peers.sh
                           --qwen3) on the original checkpoint F: its own phase
                           timings (--debug), best of --repeat runs, each in its
                           own process; one JSON line
  --bound F...             the bytes one decoder step reads in each converted
                           folder F (every text-decoder tensor, the tied
                           embedding once as the output layer; the KV cache at
                           --prompt positions) and this machine's memory read
                           bandwidth: the lower bound on ms/token; JSON lines
  --table FILE             the table of FILE's JSON lines (as the other modes
                           and models/tests/qwen3_asr_speed.rs print them)
  --folder F --audio A     time log-mel, encoder, prefill and greedy decoding of
                           A (16 kHz mono WAV) with mlx-audio's model pieces, best
                           of --repeat runs; print one JSON line

The rows of the two end-of-sequence tokens (<|endoftext|> 151643, <|im_end|>
151645) in the tied embedding are zero, so their logit is exactly 0 while the
maximum over the other 151934 random logits is positive: greedy decoding never
stops early and every implementation decodes the same number of tokens.

mlx-audio as shipped keeps the checkpoint's BF16 (--dtype bf16); --dtype f32
casts the weights first. --quantize 8|4 quantizes as mlx-audio's converter
does (its model_quant_predicate: every Linear and Embedding of the text
decoder, tied head included; the audio tower stays unquantized), group 64.

Run --make with any venv that has MLX and numpy; timing needs mlx-audio, which
pins mlx 0.32.4, so it lives in its own venv (scripts/setup-peers.sh):
~/.cache/mlx-asr/qwen3-peer-venv/bin/python.
"""
import argparse
import json
import os
import resource
import time
import wave

import mlx.core as mx
import numpy as np

VOCAB = 151936
# Ordinary (BPE) tokens occupy ids 0..151642; the added tokens follow,
# contiguous up to <asr_text> (tokenizers renumbers added tokens with gaps).
ORDINARY = 151643
NAMED_SPECIALS = {
    151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>",
    151646: "<|object_ref_start|>", 151647: "<|object_ref_end|>", 151648: "<|box_start|>",
    151649: "<|box_end|>", 151650: "<|quad_start|>", 151651: "<|quad_end|>",
    151652: "<|vision_start|>", 151653: "<|vision_end|>", 151654: "<|vision_pad|>",
    151655: "<|image_pad|>", 151656: "<|video_pad|>", 151669: "<|audio_start|>",
    151670: "<|audio_end|>", 151676: "<|audio_pad|>", 151704: "<asr_text>",
}
SPECIALS = {i: NAMED_SPECIALS.get(i, f"<|reserved_{i}|>") for i in range(ORDINARY, 151705)}
EOS = (151643, 151645)
# The ASR prompt without a system text, as token ids (MODEL.md of
# antirez/qwen-asr; mlx-audio's _build_prompt gives the same with the real
# tokenizer). The audio embeddings replace the <|audio_pad|> run.
PROMPT_HEAD = [151644, 8948, 198, 151645, 198, 151644, 872, 198, 151669]
PROMPT_TAIL = [151670, 151645, 198, 151644, 77091, 198]
AUDIO_PAD = 151676

AUDIO_CONFIG = {
    "model_type": "qwen3_asr_audio_encoder", "num_mel_bins": 128, "encoder_layers": 18,
    "encoder_attention_heads": 14, "encoder_ffn_dim": 3584, "d_model": 896,
    "output_dim": 1024, "n_window": 50, "n_window_infer": 800, "conv_chunksize": 500,
    "downsample_hidden_size": 480, "max_source_positions": 1500,
    "activation_function": "gelu", "scale_embedding": False, "dropout": 0.0,
    "attention_dropout": 0.0, "activation_dropout": 0.0, "initializer_range": 0.02,
}
TEXT_CONFIG = {
    "model_type": "qwen3", "vocab_size": VOCAB, "hidden_size": 1024,
    "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "hidden_act": "silu",
    "max_position_embeddings": 65536, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "rope_scaling": {"rope_type": "default", "mrope_section": [24, 20, 20],
                     "interleaved": True, "mrope_interleaved": True},
    "tie_word_embeddings": True, "attention_bias": False, "attention_dropout": 0.0,
    "use_cache": True, "torch_dtype": "bfloat16",
}


def thinker_shapes():
    """Every tensor of the original checkpoint: name -> (shape, kind), kind one
    of "linear" (normal * 0.02), "conv" (normal / sqrt(fan in)), "bias"
    (normal * 0.02), "norm" (ones), "norm_bias" (zeros), "embed"."""
    a, t = AUDIO_CONFIG, TEXT_CONFIG
    d, ffn, ch = a["d_model"], a["encoder_ffn_dim"], a["downsample_hidden_size"]
    shapes = {}
    at = "thinker.audio_tower."
    shapes[at + "conv2d1.weight"] = ((ch, 1, 3, 3), "conv")
    for i in (2, 3):
        shapes[at + f"conv2d{i}.weight"] = ((ch, ch, 3, 3), "conv")
    for i in (1, 2, 3):
        shapes[at + f"conv2d{i}.bias"] = ((ch,), "bias")
    shapes[at + "conv_out.weight"] = ((d, ch * 16), "linear")
    for n in range(a["encoder_layers"]):
        p = f"{at}layers.{n}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[p + f"self_attn.{proj}.weight"] = ((d, d), "linear")
            shapes[p + f"self_attn.{proj}.bias"] = ((d,), "bias")
        shapes[p + "fc1.weight"] = ((ffn, d), "linear")
        shapes[p + "fc1.bias"] = ((ffn,), "bias")
        shapes[p + "fc2.weight"] = ((d, ffn), "linear")
        shapes[p + "fc2.bias"] = ((d,), "bias")
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            shapes[p + f"{norm}.weight"] = ((d,), "norm")
            shapes[p + f"{norm}.bias"] = ((d,), "norm_bias")
    shapes[at + "ln_post.weight"] = ((d,), "norm")
    shapes[at + "ln_post.bias"] = ((d,), "norm_bias")
    shapes[at + "proj1.weight"] = ((d, d), "linear")
    shapes[at + "proj1.bias"] = ((d,), "bias")
    shapes[at + "proj2.weight"] = ((a["output_dim"], d), "linear")
    shapes[at + "proj2.bias"] = ((a["output_dim"],), "bias")

    h, inter, hd = t["hidden_size"], t["intermediate_size"], t["head_dim"]
    q, kv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    shapes["thinker.model.embed_tokens.weight"] = ((VOCAB, h), "embed")
    for n in range(t["num_hidden_layers"]):
        p = f"thinker.model.layers.{n}."
        shapes[p + "self_attn.q_proj.weight"] = ((q, h), "linear")
        shapes[p + "self_attn.k_proj.weight"] = ((kv, h), "linear")
        shapes[p + "self_attn.v_proj.weight"] = ((kv, h), "linear")
        shapes[p + "self_attn.o_proj.weight"] = ((h, q), "linear")
        shapes[p + "self_attn.q_norm.weight"] = ((hd,), "norm")
        shapes[p + "self_attn.k_norm.weight"] = ((hd,), "norm")
        shapes[p + "input_layernorm.weight"] = ((h,), "norm")
        shapes[p + "post_attention_layernorm.weight"] = ((h,), "norm")
        shapes[p + "mlp.gate_proj.weight"] = ((inter, h), "linear")
        shapes[p + "mlp.up_proj.weight"] = ((inter, h), "linear")
        shapes[p + "mlp.down_proj.weight"] = ((h, inter), "linear")
    shapes["thinker.model.norm.weight"] = ((h,), "norm")
    return shapes


def random_weights():
    mx.random.seed(0)
    weights = {}
    for name, (shape, kind) in thinker_shapes().items():
        if kind == "norm":
            w = mx.ones(shape)
        elif kind == "norm_bias":
            w = mx.zeros(shape)
        elif kind == "conv":
            w = mx.random.normal(shape) / np.sqrt(np.prod(shape[1:]))
        else:
            w = mx.random.normal(shape) * 0.02
        if kind == "embed":
            keep = np.ones((shape[0], 1), dtype=np.float32)
            keep[list(EOS)] = 0.0
            w = w * mx.array(keep)
        weights[name] = w.astype(mx.bfloat16)
    weights["thinker.lm_head.weight"] = weights["thinker.model.embed_tokens.weight"]
    return weights


def bytes_to_unicode():
    """GPT-2's printable stand-ins for the 256 byte values."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


# The words of the prompt template at their real ids (so every implementation
# sees the same 15 + audio prompt tokens).
PROMPT_WORDS = {"system": 8948, "user": 872, "assistant": 77091, "\u010a": 198}


def synthetic_bpe():
    """A valid byte-level BPE of Qwen's ordinary size: the 256 bytes, the
    prompt template's words (first in merge rank, so they come out whole),
    all pairs of bytes, then byte-pair + byte triples up to id 151642; every
    merge builds a token from two earlier ones. The template's words and
    newline (Ċ) are then moved to their real ids."""
    chars = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}
    merges = []

    def add(a, b):
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append(f"{a} {b}")

    for word in PROMPT_WORDS:
        for k in range(2, len(word) + 1):
            add(word[:k - 1], word[k - 1])
    for a in chars:
        for b in chars:
            add(a, b)
    for a in chars:
        for b in chars:
            for c in chars:
                if len(vocab) == ORDINARY:
                    break
                add(a + b, c)
            if len(vocab) == ORDINARY:
                break
        if len(vocab) == ORDINARY:
            break
    by_id = {i: t for t, i in vocab.items()}
    for word, real in PROMPT_WORDS.items():
        other = by_id[real]
        vocab[word], vocab[other] = real, vocab[word]
        by_id[vocab[other]] = other
        by_id[real] = word
    return vocab, merges


def make(folder):
    os.makedirs(folder, exist_ok=True)
    mx.save_safetensors(os.path.join(folder, "model.safetensors"), random_weights(),
                        metadata={"format": "pt"})
    config = {
        "architectures": ["Qwen3ASRForConditionalGeneration"],
        "model_type": "qwen3_asr",
        "thinker_config": {
            "model_type": "qwen3_asr_thinker", "audio_config": AUDIO_CONFIG,
            "text_config": TEXT_CONFIG, "audio_token_id": AUDIO_PAD,
            "audio_start_token_id": 151669, "audio_end_token_id": 151670,
            "initializer_range": 0.02,
        },
        "support_languages": ["English"],
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump({
            "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
            "sampling_rate": 16000, "hop_length": 160, "n_fft": 400, "chunk_length": 30,
            "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right",
            "padding_value": 0.0, "return_attention_mask": True, "dither": 0.0,
        }, f, indent=1)
    write_tokenizer(folder)


def write_tokenizer(folder):
    vocab, merges = synthetic_bpe()
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    added = {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True}
             for i, s in sorted(SPECIALS.items())}
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({
            "tokenizer_class": "Qwen2Tokenizer", "added_tokens_decoder": added,
            "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
            "unk_token": None, "errors": "replace", "model_max_length": 65536,
            "split_special_tokens": False, "clean_up_tokenization_spaces": False,
        }, f, indent=1)


def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return data.astype(np.float32) / 32768.0


def load(folder, dtype, bits):
    import mlx.nn as nn
    from mlx_audio.stt.models.qwen3_asr.config import ModelConfig
    from mlx_audio.stt.models.qwen3_asr.qwen3_asr import Model

    with open(os.path.join(folder, "config.json")) as f:
        model = Model(ModelConfig.from_dict(json.load(f)))
    weights = model.sanitize(mx.load(os.path.join(folder, "model.safetensors")))
    if dtype == "f32":
        weights = {k: v.astype(mx.float32) for k, v in weights.items()}
    model.load_weights(list(weights.items()), strict=True)
    if bits:
        inner = model._model
        nn.quantize(inner, group_size=64, bits=bits,
                    class_predicate=lambda p, m: hasattr(m, "to_quantized")
                    and inner.model_quant_predicate(p, m))
    mx.eval(model.parameters())
    return model


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_once(model, extractor, samples, tokens):
    from mlx_audio.lm.generate import generate_step

    def mel():
        f = extractor(samples, sampling_rate=16000, return_attention_mask=True,
                      truncation=False, padding=True, return_tensors="np")
        return mx.array(f["input_features"]), mx.array(f["attention_mask"])

    (features, mask), t_mel = timed(mel)

    def encode():
        a = model.get_audio_features(features, mask)
        mx.eval(a)
        return a

    audio, t_enc = timed(encode)
    ids = mx.array(PROMPT_HEAD + [AUDIO_PAD] * audio.shape[0] + PROMPT_TAIL)
    # generate_step (mlx-audio's copy of mlx-lm's loop) prefills all but the
    # last prompt position, then steps one token at a time with the next step
    # queued before the current token is read. Its first token marks the end
    # of the prefill.
    t0 = time.perf_counter()
    embeds = model._build_inputs_embeds(ids[None], audio)[0]
    mx.eval(embeds)
    t_embed = time.perf_counter() - t0
    steps = generate_step(prompt=ids, input_embeddings=embeds, model=model._model,
                          max_tokens=tokens + 1, sampler=lambda lp: mx.argmax(lp, axis=-1))
    out = []
    t0 = time.perf_counter()
    token, _ = next(steps)
    out.append(int(token))
    t_prefill = time.perf_counter() - t0 + t_embed
    t0 = time.perf_counter()
    for token, _ in steps:
        out.append(int(token))
    t_decode = time.perf_counter() - t0
    assert not set(out) & set(EOS), "an end-of-sequence token was decoded"
    return {"mel_s": t_mel, "encoder_s": t_enc, "prefill_s": t_prefill,
            "decode_s": t_decode, "decoded": len(out) - 1, "prompt": int(ids.shape[0]),
            "audio_tokens": int(audio.shape[0])}


def antirez(args):
    import re
    import subprocess

    env = dict(os.environ, QWEN_MAX_TOKENS=str(args.tokens))
    best = None
    for _ in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        done = subprocess.run([args.antirez, "-d", args.folder, "-i", args.audio, "--debug"],
                              env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        log = done.stderr

        def ms(pattern):
            return float(re.search(pattern, log).group(1)) / 1000

        run = {"mel_s": ms(r"Mel: \d+ frames \((\d+) ms"),
               "encoder_s": ms(r"Encoder: \d+ tokens \((\d+) ms"),
               "prefill_s": ms(r"Prefill: \d+ tokens \((\d+) ms"),
               "decode_s": ms(r"Decode: \d+ tokens \((\d+) ms"),
               "decoded": int(re.search(r"Decode: (\d+) tokens", log).group(1)),
               "prompt": int(re.search(r"Prefill: (\d+) tokens", log).group(1)),
               "process_s": wall}
        # RUSAGE_CHILDREN's maximum covers every child so far: the runs are
        # alike, so the first run's figure stands.
        run["peak_rss_mb"] = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        score = run["encoder_s"] + run["prefill_s"] + run["decode_s"]
        if best is None or score < best["encoder_s"] + best["prefill_s"] + best["decode_s"]:
            best = run
    best["ms_per_token"] = 1000 * best["decode_s"] / best["decoded"]
    best["audio_s"] = len(read_wav(args.audio)) / 16000
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in best.items()}))


def safetensors_tensors(path):
    """name -> byte size of each tensor in a safetensors file (its header)."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    header.pop("__metadata__", None)
    return {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items()}


def read_bandwidth():
    """Memory read bandwidth in GB/s: 1 GiB of f32 summed by as many threads
    as there are cores (numpy releases the GIL in reductions), best of 5."""
    from concurrent.futures import ThreadPoolExecutor

    threads = os.cpu_count()
    a = np.ones(1 << 28, dtype=np.float32)
    parts = np.array_split(a, threads)
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(5):
            t0 = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = max(best, a.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


def bound(args):
    gbs = read_bandwidth()
    t = TEXT_CONFIG
    for folder in args.bound:
        sizes = safetensors_tensors(os.path.join(folder, "weights.safetensors"))
        with open(os.path.join(folder, "config.json")) as f:
            q = json.load(f).get("quantization")
        weights = sum(n for k, n in sizes.items() if k.startswith("model.language_model.")
                      or k.startswith("lm_head."))
        # The KV cache in f32 at the middle of the decoded run.
        positions = args.prompt + args.tokens // 2
        kv = 2 * t["num_hidden_layers"] * t["num_key_value_heads"] * t["head_dim"] * positions * 4
        print(json.dumps({
            "variant": f"q{q['bits']}" if q else "f32", "weight_mb": round(weights / 1e6, 1),
            "kv_mb": round(kv / 1e6, 1), "read_gb_s": round(gbs, 2),
            "bound_ms_per_token": round(1000 * (weights + kv) / (gbs * 1e9), 2)}))


def table(path):
    """One row per implementation, variant and clip; then, for each of ours,
    how many times faster than each peer at the same precision (antirez has
    only its BF16) and how far its decoder step is from the bound."""
    rows, bounds = [], {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "bound_ms_per_token" in r:
                bounds[r["variant"]] = r
            else:
                rows.append(r)
    head = ("impl", "variant", "audio s", "mel s", "enc s/10s", "prefill s (tok)",
            "ms/token", "total s", "peak RSS MB", "load avg")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        total = r["mel_s"] + r["encoder_s"] + r["prefill_s"] + r["decode_s"]
        print(f"| {r['impl']} | {r['variant']} | {r['audio_s']:.1f} | {r['mel_s']:.3f} | "
              f"{10 * r['encoder_s'] / r['audio_s']:.2f} | {r['prefill_s']:.2f} ({r['prompt']}) | "
              f"{r['ms_per_token']:.1f} | {total:.1f} | {r['peak_rss_mb']:.0f} | {r.get('load', '')} |")
    print()
    head = ("ours", "audio s", "vs", "encoder ×", "prefill ×", "decode ×", "total ×",
            "bound ms/token", "ours / bound")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for o in (r for r in rows if r["impl"] == "ours"):
        precision = o["variant"].removesuffix("-int8")
        peers = [p for p in rows if p["impl"] != "ours" and p["audio_s"] == o["audio_s"]
                 and (p["impl"] == "antirez" or p["variant"].startswith(precision))]
        b = bounds.get(precision)
        phases = ("mel_s", "encoder_s", "prefill_s", "decode_s")
        for p in peers:
            def x(key):
                return f"{p[key] / o[key]:.2f}"
            tot = sum(p[k] for k in phases) / sum(o[k] for k in phases)
            vs_bound = (f"{b['bound_ms_per_token']} | {o['ms_per_token'] / b['bound_ms_per_token']:.2f}"
                        if b else "- | -")
            print(f"| {o['variant']} | {o['audio_s']:.1f} | {p['impl']} {p['variant']} | "
                  f"{x('encoder_s')} | {x('prefill_s')} | {x('ms_per_token')} | {tot:.2f} | "
                  f"{vs_bound} |")
    for v, b in bounds.items():
        print(f"\nbound {v}: {b['weight_mb']} MB of weights + {b['kv_mb']} MB of KV cache per "
              f"step at {b['read_gb_s']} GB/s read = {b['bound_ms_per_token']} ms/token", end="")
    print()


def bench(args):
    from transformers import WhisperFeatureExtractor

    mx.set_default_device(mx.cpu)
    model, t_load = timed(lambda: load(args.folder, args.dtype, args.quantize))
    extractor = WhisperFeatureExtractor.from_pretrained(args.folder)
    samples = read_wav(args.audio)
    best = None
    for _ in range(args.repeat):
        run = run_once(model, extractor, samples, args.tokens)
        score = run["encoder_s"] + run["prefill_s"] + run["decode_s"]
        if best is None or score < best["encoder_s"] + best["prefill_s"] + best["decode_s"]:
            best = run
    best["ms_per_token"] = 1000 * best["decode_s"] / best["decoded"]
    best["load_s"] = t_load
    best["audio_s"] = len(samples) / 16000
    best["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in best.items()}))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make")
    p.add_argument("--antirez")
    p.add_argument("--bound", nargs="+")
    p.add_argument("--prompt", type=int, default=158)
    p.add_argument("--table")
    p.add_argument("--folder")
    p.add_argument("--audio")
    p.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    p.add_argument("--quantize", type=int, choices=[0, 4, 8], default=0)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    if args.make:
        make(args.make)
    elif args.antirez:
        antirez(args)
    elif args.bound:
        bound(args)
    elif args.table:
        table(args.table)
    else:
        bench(args)


if __name__ == "__main__":
    main()
