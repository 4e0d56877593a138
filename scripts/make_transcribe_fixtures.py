#!/usr/bin/env python3
"""Reference long-form transcriptions for the seek-loop tests, with segments.

tiny.en, openai-whisper (PyTorch fp32 CPU), default `transcribe()` options
(timestamps, temperature fallback, previous-text prompts):
  jfk               ../shared/data/audio/jfk.wav
  librispeech_x3    the four LibriSpeech clips, three times over, each
                    followed by 2 s of silence (several 30 s windows)
  librispeech_x3_*  the same with condition_on_previous_text=False, and
                    with without_timestamps=True
  *_words           jfk and librispeech_x3 with word_timestamps=True

base (multilingual), mlx-whisper on the MLX folder this project converts
from the registry's CTranslate2 base (openai-whisper cannot load it):
  multilingual      audio/multilingual.mp3: detected language and its
                    probability, transcription; and a translation to English

Audio is read with openai-whisper's ffmpeg loader; the 16 kHz 16-bit FLAC
clips decode to the same samples in any decoder, so the joined recording is
rebuilt exactly by the tests.

Needs the peers venv (scripts/setup-peers.sh) and ffmpeg. Usage:
  python scripts/make_transcribe_fixtures.py ../shared <mlx-base-folder> \
      pipeline/tests/fixtures/transcribe-references.json
"""
import json
import sys
from pathlib import Path

import numpy as np
import whisper

GAP_SECONDS = 2.0
REPEATS = 3


def librispeech_clips(data):
    return sorted(str(p.relative_to(data)) for p in (data / "librispeech").rglob("*.flac"))


def joined(data, clips):
    gap = np.zeros(int(GAP_SECONDS * 16000), dtype=np.float32)
    parts = []
    for _ in range(REPEATS):
        for clip in clips:
            parts += [whisper.load_audio(str(data / clip)), gap]
    return np.concatenate(parts)


def summary(result):
    return {
        "text": result["text"],
        "language": result.get("language"),
        "segments": [
            {k: s[k] for k in ("seek", "start", "end", "text", "tokens", "temperature", "words") if k in s}
            for s in result["segments"]
        ],
    }


def main(shared, base_folder, out):
    shared = Path(shared)
    data = shared / "data"
    model = whisper.load_model(str(shared / "models/whisper-tiny.en-openai/tiny.en.pt"), device="cpu").float()
    # Loaded from a file the model gets default alignment heads; loaded by
    # name ("tiny.en") it gets the published ones, as CTranslate2 stores them.
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    clips = librispeech_clips(data)
    audio = joined(data, clips)
    refs = {
        "librispeech_recipe": {"clips": clips, "gap_seconds": GAP_SECONDS, "repeats": REPEATS},
        "jfk": summary(whisper.transcribe(model, str(data / "audio/jfk.wav"), fp16=False)),
        "librispeech_x3": summary(whisper.transcribe(model, audio, fp16=False)),
        "librispeech_x3_no_condition": summary(
            whisper.transcribe(model, audio, fp16=False, condition_on_previous_text=False)
        ),
        "jfk_words": summary(
            whisper.transcribe(model, str(data / "audio/jfk.wav"), fp16=False, word_timestamps=True)
        ),
        "librispeech_x3_words": summary(whisper.transcribe(model, audio, fp16=False, word_timestamps=True)),
        "librispeech_x3_without_timestamps": summary(
            whisper.transcribe(model, audio, fp16=False, without_timestamps=True)
        ),
    }

    import mlx_whisper

    multilingual = str(data / "audio/multilingual.mp3")
    mel = mlx_whisper.audio.log_mel_spectrogram(mlx_whisper.audio.load_audio(multilingual), padding=480000)
    base = mlx_whisper.load_models.load_model(base_folder)
    segment = mel[:3000]  # frames first in mlx-whisper
    _, probs = base.detect_language(segment)
    language = max(probs, key=probs.get)
    refs["multilingual"] = {
        "language": language,
        "language_probability": float(probs[language]),
        "transcribe": summary(mlx_whisper.transcribe(multilingual, path_or_hf_repo=base_folder, fp16=False)),
        "translate": summary(mlx_whisper.transcribe(multilingual, path_or_hf_repo=base_folder, task="translate", fp16=False)),
    }
    Path(out).write_text(json.dumps(refs, indent=1, ensure_ascii=False) + "\n")
    for key, value in refs.items():
        print(key, str(value)[:300], file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:4])
