"""Live transcription: samples pushed as they arrive, text back as partial
hypotheses and final words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import _native
from .audio import samples_of


@dataclass(frozen=True)
class TimedWord:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class StreamEvent:
    """A partial hypothesis (replaced by the next one) or final text
    (appended for good), timed in seconds from the start of the stream."""

    type: Literal["partial", "final"]
    text: str
    start: float
    end: float
    #: The timed words, for recognizers that time them (Whisper).
    words: list[TimedWord] | None = None


class Stream:
    """A live stream of one pipeline (see `Pipeline.stream`). Push 16 kHz
    mono samples as they arrive; `finish()` makes everything heard final.
    """

    def __init__(self, native: _native.NativeStream) -> None:
        self._native = native

    def push(self, samples: np.ndarray) -> list[StreamEvent]:
        """Appends samples; the events they brought about."""
        return _events(self._native.push(samples_of(samples)))

    def finish(self) -> list[StreamEvent]:
        """Ends the stream; the last events (all final)."""
        return _events(self._native.finish())

    @property
    def seconds(self) -> float:
        """Seconds pushed so far."""
        return self._native.seconds


def _events(raw: list[dict[str, Any]]) -> list[StreamEvent]:
    out = []
    for event in raw:
        words = event.pop("words", None)
        out.append(
            StreamEvent(words=None if words is None else [TimedWord(**w) for w in words], **event)
        )
    return out
