"""What a transcription gives: the transcript with its segments, timed
words and speaker turns. Segments and words have the fields of
faster-whisper's `Segment` and `Word` (plus `speaker`, when diarized)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import _native


@dataclass(frozen=True)
class Word:
    """A timed word, in seconds from the start of the recording."""

    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    """A stretch of transcribed audio (openai-whisper's segment fields)."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    #: Timed words when words are timed, else None (as in faster-whisper).
    words: list[Word] | None
    temperature: float
    speaker: str | None = None


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of the recording attributed to one speaker."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Transcript:
    """The transcript of one recording."""

    text: str
    #: Spoken language code (`en`), given or detected.
    language: str | None
    #: Its probability when it was detected rather than given.
    language_probability: float | None
    #: Seconds of audio transcribed.
    duration: float
    segments: list[Segment]
    #: Who spoke when, in time order, when the recording is diarized.
    speakers: list[SpeakerTurn]
    _native: _native.NativeTranscript = field(repr=False, compare=False)

    @classmethod
    def _of(cls, native: _native.NativeTranscript) -> Transcript:
        data = json.loads(native.render("json"))
        return cls(
            text=data["text"],
            language=data.get("language"),
            language_probability=data.get("language_probability"),
            duration=native.duration,
            segments=[_segment(s) for s in data["segments"]],
            speakers=[SpeakerTurn(**t) for t in data.get("speakers", [])],
            _native=native,
        )

    @property
    def words(self) -> list[Word]:
        """Every timed word, in order (empty when words are not timed)."""
        return [w for s in self.segments for w in s.words or []]

    def render(self, format: str) -> str:
        """The file `pipeline run` writes in `format`: txt, json, srt, vtt,
        tsv or rttm (subtitles cut as the config's `[subtitles]` says)."""
        return self._native.render(format)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's json output, as a dict."""
        return json.loads(self._native.render("json"))


def _segment(data: dict[str, Any]) -> Segment:
    words = [Word(**w) for w in data.pop("words", [])] or None
    return Segment(words=words, speaker=data.pop("speaker", None), **data)
