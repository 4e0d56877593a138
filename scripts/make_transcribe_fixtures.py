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
  silence_gap_*     jfk, 45 s of digital silence, the first LibriSpeech
                    clip; with word_timestamps=True, without and with
                    hallucination_silence_threshold=2
  silence_30s       30 s of digital silence (Whisper alone writes " you")
  jfk_words_vtt_*   openai-whisper's VTT writer on jfk_words, with
                    highlight_words, and with max_words_per_line=4

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
import io
import json
import sys
from pathlib import Path

import numpy as np
import whisper
import whisper.utils

GAP_SECONDS = 2.0
REPEATS = 3
SILENCE_GAP_SECONDS = 45.0


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
    silence = np.zeros(int(SILENCE_GAP_SECONDS * 16000), dtype=np.float32)
    gapped = np.concatenate([whisper.load_audio(str(data / "audio/jfk.wav")), silence,
                             whisper.load_audio(str(data / clips[0]))])
    refs = {
        "librispeech_recipe": {"clips": clips, "gap_seconds": GAP_SECONDS, "repeats": REPEATS},
        "silence_gap_recipe": {"before": "audio/jfk.wav", "gap_seconds": SILENCE_GAP_SECONDS, "after": clips[0]},
        "silence_gap_words": summary(whisper.transcribe(model, gapped, fp16=False, word_timestamps=True)),
        "silence_gap_hallucination_2s": summary(
            whisper.transcribe(model, gapped, fp16=False, word_timestamps=True, hallucination_silence_threshold=2.0)
        ),
        "silence_30s": summary(whisper.transcribe(model, np.zeros(30 * 16000, dtype=np.float32), fp16=False)),
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
    jfk_words = whisper.transcribe(model, str(data / "audio/jfk.wav"), fp16=False, word_timestamps=True)
    for key, options in [("highlight", {"highlight_words": True}), ("4_words", {"max_words_per_line": 4})]:
        text = io.StringIO()
        whisper.utils.WriteVTT(".").write_result(jfk_words, text, **options)
        refs[f"jfk_words_vtt_{key}"] = text.getvalue()
    Path(out).write_text(json.dumps(refs, indent=1, ensure_ascii=False) + "\n")
    for key, value in refs.items():
        print(key, str(value)[:300], file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:4])
