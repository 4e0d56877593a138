"""Writes the wav2vec2 aligner's parity fixtures under pipeline/tests/fixtures/.

- `wav2vec2-align/`: a tiny random `transformers.Wav2Vec2ForCTC` (seeded;
  `save_pretrained`: config.json + model.safetensors) with `vocab.json`, a
  character vocabulary shaped like facebook/wav2vec2-base-960h's (`<pad>`
  blank, `|` word delimiter, upper-case letters, apostrophe; no digits, no
  punctuation).
- `wav2vec2-align.json`: two transcript segments of jfk.wav (`start`, `end`,
  `text`; the first holds "1961," whose characters are all outside the
  vocabulary) and, per segment, what WhisperX 3.8.6's `align()` makes of
  them with that model: the tightened segment `start`/`end` and each word's
  `word`, `start`, `end`, `score`.
- `wav2vec2-torchaudio.pt` + `wav2vec2-torchaudio.npz`: the state dict of a
  tiny random `torchaudio.models.wav2vec2_model` (torchaudio's names:
  `feature_extractor.conv_layers.0.conv.weight`, `encoder.transformer...`,
  `aux.weight`) and its logits (`logits` [1, frames, 29]) for `samples`
  [1, 2000], for the torchaudio-bundle converter's test.

The alignment reproduces whisperx/alignment.py (3.8.6; read from the wheel,
not installed: it needs nltk and pandas at import) step by step for
segments that are one sentence each (WhisperX's Punkt sentence split then
leaves them whole): each segment's samples `[int(start·16000),
int(end·16000))` through the model as they are (WhisperX normalizes
nothing), log-softmax; the text lower-cased, spaces as `|`, the leading and
trailing spaces dropped, every other character outside the vocabulary a
wildcard whose score per frame is the best non-blank log-probability (an
extra emission column); the path through the frames; character times
`round(frame · (end − start) / frames + start, 3)`, scores the mean
probability of the character's frames rounded to 3 places; words split at
spaces, a word's start/end the first start / last end of its characters,
its score the mean of its characters' scores (rounded to 3); the segment
tightened to its first character start and last non-space character end.

One deliberate difference: the path is CTC's Viterbi path
(`torchaudio.functional.forced_align`, each character's frames those it is
emitted on) where WhisperX 3.8.6 runs the torchaudio tutorial's trellis
(repeats of a character scored as blanks, a character's span running
through the blanks after it). The project's aligner uses the CTC path; the
rest of WhisperX's procedure is what the fixture checks.

Run with the peers venv:
    ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_wav2vec2_align_fixtures.py
"""

import json
import wave
from pathlib import Path

import numpy as np
import torch
import torchaudio
import torchaudio.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "pipeline" / "tests" / "fixtures"
JFK = ROOT.parent / "shared" / "data" / "audio" / "jfk.wav"
SAMPLE_RATE = 16000

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
SEGMENTS = [
    {"start": 0.2, "end": 3.9, "text": " And so, my fellow Americans of 1961,"},
    {
        "start": 3.9,
        "end": 10.9,
        "text": " ask not what your country can do for you, ask what you can do for your country.",
    },
]


def tiny_model() -> Wav2Vec2ForCTC:
    config = Wav2Vec2Config(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
    )
    model = Wav2Vec2ForCTC(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
        # Sharper emissions than a random head's, so the path has choices to make.
        model.lm_head.weight.mul_(4.0)
    return model.eval()


def dictionary() -> dict:
    """WhisperX's `align_dictionary`: every vocabulary entry lower-cased."""
    return {token.lower(): code for code, token in enumerate(VOCAB)}


def align_segment(model, audio: np.ndarray, segment: dict, vocab: dict) -> dict:
    t1, t2, text = segment["start"], segment["end"], segment["text"]
    leading = len(text) - len(text.lstrip())
    trailing = len(text) - len(text.rstrip())
    clean_char, clean_cdx = [], []
    for cdx, char in enumerate(text):
        c = char.lower().replace(" ", "|")
        if cdx < leading or cdx > len(text) - trailing - 1:
            continue
        if c in vocab or c not in (" ", "|"):
            clean_char.append(c)
            clean_cdx.append(cdx)
    waveform = torch.from_numpy(audio[int(t1 * SAMPLE_RATE) : int(t2 * SAMPLE_RATE)])[None]
    with torch.inference_mode():
        emission = torch.log_softmax(model(waveform).logits, dim=-1)[0]
    blank = vocab["<pad>"]
    if any(c not in vocab for c in clean_char):
        non_blank = torch.ones(emission.size(1), dtype=torch.bool)
        non_blank[blank] = False
        wildcard = emission[:, non_blank].max(dim=1).values
        emission = torch.cat([emission, wildcard[:, None]], dim=1)
    wildcard_id = emission.size(1) - 1
    tokens = [vocab.get(c, wildcard_id) for c in clean_char]
    path, scores = F.forced_align(
        emission[None], torch.tensor([tokens], dtype=torch.int32), blank=blank
    )
    spans = F.merge_tokens(path[0], scores[0].exp(), blank=blank)
    assert len(spans) == len(tokens)
    frames = emission.size(0)
    ratio = (t2 - t1) / frames
    chars = []
    word_idx = 0
    for cdx, char in enumerate(text):
        start = end = score = None
        if cdx in clean_cdx:
            span = spans[clean_cdx.index(cdx)]
            start = round(span.start * ratio + t1, 3)
            end = round(span.end * ratio + t1, 3)
            score = round(float(span.score), 3)
        chars.append({"char": char, "start": start, "end": end, "score": score, "word": word_idx})
        if cdx == len(text) - 1 or text[cdx + 1] == " ":
            word_idx += 1
    words = []
    for w in range(word_idx):
        word_chars = [c for c in chars if c["word"] == w]
        word_text = "".join(c["char"] for c in word_chars).strip()
        if not word_text:
            continue
        timed = [c for c in word_chars if c["char"] != " " and c["start"] is not None]
        words.append(
            {
                "word": word_text,
                "start": min(c["start"] for c in timed),
                "end": max(c["end"] for c in timed),
                "score": round(float(np.mean([c["score"] for c in timed])), 3),
            }
        )
    starts = [c["start"] for c in chars if c["start"] is not None]
    ends = [c["end"] for c in chars if c["char"] != " " and c["end"] is not None]
    return {
        "start": t1,
        "end": t2,
        "text": text,
        "frames": frames,
        "aligned_start": min(starts),
        "aligned_end": max(ends),
        "words": words,
    }


def torchaudio_fixture() -> None:
    torch.manual_seed(1)
    model = torchaudio.models.wav2vec2_model(
        extractor_mode="group_norm",
        extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2), (16, 2, 2)],
        extractor_conv_bias=False,
        encoder_embed_dim=64,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=16,
        encoder_pos_conv_groups=16,
        encoder_num_layers=1,
        encoder_num_heads=1,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=64,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=False,
        encoder_layer_drop=0.0,
        aux_num_out=29,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
    model.eval()
    samples = (0.1 * torch.randn(1, 2000)).float()
    with torch.inference_mode():
        logits, _ = model(samples)
    torch.save(model.state_dict(), OUT / "wav2vec2-torchaudio.pt")
    np.savez(OUT / "wav2vec2-torchaudio.npz", samples=samples.numpy(), logits=logits.numpy())
    print("torchaudio", tuple(logits.shape))


def main() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    folder = OUT / "wav2vec2-align"
    model.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}, indent=1))
    with wave.open(str(JFK)) as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
    audio = pcm.astype(np.float32) / 32768.0
    vocab = dictionary()
    segments = [align_segment(model, audio, s, vocab) for s in SEGMENTS]
    (OUT / "wav2vec2-align.json").write_text(json.dumps({"segments": segments}, indent=1))
    for s in segments:
        print(s["frames"], s["aligned_start"], s["aligned_end"], s["words"][:4])
    torchaudio_fixture()


if __name__ == "__main__":
    main()
