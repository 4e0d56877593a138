#!/usr/bin/env python3
"""openai-whisper's transcripts of the shared LJ Speech and LibriSpeech clips
with tiny.en (greedy, temperature 0, fp32 CPU), next to the human reference
transcripts, for the WER comparison test: `openai_whisper` with its default
timestamped decoding, `openai_whisper_no_timestamps` with
`without_timestamps=True`, `openai_whisper_beam5` with `beam_size=5`, and
`openai_whisper_words` (word, start, end) from `word_timestamps=True` with
the published tiny.en alignment heads (as CTranslate2 stores them).

Needs: openai-whisper (pip) and ffmpeg (apt). Usage:
  python scripts/make_clip_fixtures.py ../shared pipeline/tests/fixtures/clips-tiny.en.json
"""
import json
import sys
from pathlib import Path

import whisper


def clips(data):
    for line in (data / "ljspeech/metadata.csv").read_text().splitlines():
        clip_id, _, normalized = line.split("|")
        yield clip_id, f"ljspeech/wavs/{clip_id}.wav", normalized
    for trans in sorted((data / "librispeech").rglob("*.trans.txt")):
        for line in trans.read_text().splitlines():
            clip_id, text = line.split(" ", 1)
            yield clip_id, str((trans.parent / f"{clip_id}.flac").relative_to(data)), text


def main(shared, out):
    shared = Path(shared)
    model = whisper.load_model(str(shared / "models/whisper-tiny.en-openai/tiny.en.pt"), device="cpu").float()
    # Loaded from a file the model gets default alignment heads; loaded by
    # name it gets the published ones.
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    rows = []
    for clip_id, audio, reference in clips(shared / "data"):
        path = str(shared / "data" / audio)
        options = dict(temperature=0.0, fp16=False, language="en")
        default = whisper.transcribe(model, path, **options)["text"].strip()
        no_timestamps = whisper.transcribe(model, path, without_timestamps=True, **options)["text"].strip()
        beam5 = whisper.transcribe(model, path, beam_size=5, **options)["text"].strip()
        timed = whisper.transcribe(model, path, word_timestamps=True, **options)
        words = [[w["word"], round(w["start"], 2), round(w["end"], 2)]
                 for s in timed["segments"] for w in s["words"]]
        rows.append({"id": clip_id, "audio": audio, "reference": reference, "openai_whisper": default,
                     "openai_whisper_no_timestamps": no_timestamps, "openai_whisper_beam5": beam5,
                     "openai_whisper_words": words})
        print(clip_id, rows[-1]["openai_whisper"], file=sys.stderr)
    Path(out).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
