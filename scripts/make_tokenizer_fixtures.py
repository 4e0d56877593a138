#!/usr/bin/env python3
"""openai-whisper's multilingual tokenizer (tiktoken over its
multilingual.tiktoken, 99 languages) on a few texts in several scripts: the
reference token ids that the `base` registry model's tokenizer.json must
reproduce (models/tests/tokenizer_multilingual.rs), plus the special-token ids and
openai-whisper's `non_speech_tokens` (its default suppression list).

Only whisper/tokenizer.py is imported (it needs tiktoken, not torch), from an
unpacked openai-whisper source tree. Usage:

  python -m venv /tmp/tk && /tmp/tk/bin/pip install tiktoken==0.12.0
  /tmp/tk/bin/pip download --no-deps --dest /tmp/ow openai-whisper==20250625
  tar xzf /tmp/ow/openai_whisper-20250625.tar.gz -C /tmp/ow
  /tmp/tk/bin/python scripts/make_tokenizer_fixtures.py \
      /tmp/ow/openai_whisper-20250625 models/tests/fixtures/tokens-multilingual.json
"""
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import tiktoken

TEXTS = [
    " And so my fellow Americans, ask not what your country can do for you,"
    " ask what you can do for your country.",
    "Hello world",
    " It's 3:45 p.m. -- we'll see; they're 100% sure (I'd say).",
    "  two  spaces,\ttab and\nnewline ",
    " Ça coûte 12,50 € — déjà vu à l'hôtel.",
    " Größenwahn über Straßenbahnhöfe",
    " 我们今天去北京。",
    " こんにちは、世界！カタカナとひらがな",
    " Привет, как дела?",
    " مرحبا بالعالم",
    " 안녕하세요 여러분",
    " ♪ la la la ♪ 🎵🙂",
]


def main(source, out):
    path = Path(source) / "whisper" / "tokenizer.py"
    spec = importlib.util.spec_from_file_location("whisper_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tok = module.get_tokenizer(multilingual=True, num_languages=99, task="transcribe")
    ranks = Path(source) / "whisper" / "assets" / "multilingual.tiktoken"
    fixture = {
        "generator": "scripts/make_tokenizer_fixtures.py",
        "openai_whisper_tokenizer_py_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "multilingual_tiktoken_sha256": hashlib.sha256(ranks.read_bytes()).hexdigest(),
        "tiktoken": tiktoken.__version__,
        "n_vocab": tok.encoding.n_vocab,
        "special": {
            "eot": tok.eot,
            "sot": tok.sot,
            "transcribe": tok.transcribe,
            "translate": tok.translate,
            "sot_prev": tok.sot_prev,
            "no_speech": tok.no_speech,
            "no_timestamps": tok.no_timestamps,
            "timestamp_begin": tok.timestamp_begin,
        },
        "languages": {code: tok.to_language_token(code) for code in ["en", "zh", "de", "fr", "ja", "su"]},
        "n_languages": len(tok.all_language_codes),
        "sot_sequence_fr": list(
            module.get_tokenizer(multilingual=True, language="fr", task="transcribe").sot_sequence
        ),
        "non_speech_tokens": sorted(tok.non_speech_tokens),
        "texts": [{"text": t, "ids": tok.encode(t)} for t in TEXTS],
    }
    for entry in fixture["texts"]:
        assert tok.decode(entry["ids"]) == entry["text"]
    Path(out).write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
