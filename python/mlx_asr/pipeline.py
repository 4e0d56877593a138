"""The pipeline: built once from a config file and/or keyword arguments,
then used for any number of recordings, from any number of threads."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _native
from .audio import AudioInput, native_audio
from .errors import Error
from .stream import Stream
from .transcript import Transcript


class Pipeline:
    """A loaded speech pipeline: model, voice activity detection, aligner
    and diarizer, as `pipeline run` would run them.

    ``Pipeline("config.toml")`` reads a run config (its `input`, `output_dir`
    and `formats` are not used); keyword arguments take the config's keys,
    tables as dicts, and are laid over the file's::

        Pipeline(model="base", decode={"language": "en", "beam_size": 5})
        Pipeline("config.toml", diarization={"num_speakers": 2})

    ``None`` unsets a key. The model is fetched, converted and loaded here,
    once. Threads may share one pipeline: the GIL is released while the
    model works, and transcriptions take turns on the model.

    Raises `ConfigError` for settings that do not check and `ModelError`
    for a model that cannot be loaded, with the CLI's messages.
    """

    def __init__(self, config: str | os.PathLike[str] | None = None, /, **settings: Any) -> None:
        path = None if config is None else os.fspath(config)
        self._native = _native.NativePipeline(path, settings or None)

    def transcribe(
        self,
        audio: AudioInput,
        /,
        *,
        progress: Callable[[float, float | None], None] | None = None,
        **decode: Any,
    ) -> Transcript:
        """Transcribes a recording: a path (any format `pipeline run`
        reads), encoded audio as bytes or a binary file object, or 16 kHz
        mono samples as a 1-D NumPy array (float in [-1, 1], or int16).

        Keyword arguments are `[decode]` settings for this call, laid over
        the pipeline's (``language="de"``, ``word_timestamps=True``,
        ``beam_size=5``). `progress(done, total)` is called with the
        seconds transcribed and the recording's length, when known.

        Raises `AudioError` for a recording that cannot be read and
        `ConfigError` for decode settings that do not check.
        """
        native = self._native.transcribe(native_audio(audio), decode or None, progress)
        return Transcript._of(native)

    def transcribe_batch(
        self,
        audios: Sequence[AudioInput],
        /,
        *,
        progress: Callable[[int, float, float | None], None] | None = None,
        **decode: Any,
    ) -> list[Transcript | Error]:
        """Transcribes several recordings, decoded side by side up to the
        `batch_size` decode setting (the same transcripts, sooner). One
        result per recording, in order: a recording that fails has its
        exception in its place and the others go on. `progress(i, done,
        total)` hears of recording i."""
        prepared: list[str | np.ndarray | Error] = []
        for audio in audios:
            try:
                prepared.append(native_audio(audio))
            except Error as error:  # encoded audio that does not decode
                prepared.append(error)
        todo = [i for i, p in enumerate(prepared) if not isinstance(p, Error)]
        on_progress = None
        if progress is not None:
            # The native side counts only the recordings it was given.
            def on_progress(j: int, done: float, total: float | None) -> None:
                progress(todo[j], done, total)

        natives = iter(
            self._native.transcribe_batch([prepared[i] for i in todo], decode or None, on_progress)
        )
        results: list[Transcript | Error] = []
        for p in prepared:
            native = p if isinstance(p, Error) else next(natives)
            results.append(native if isinstance(native, Error) else Transcript._of(native))
        return results

    def stream(self, **options: Any) -> Stream:
        """A live stream, with `[stream]` settings (``step``, ``trim``,
        ``max_buffer``, ``max_new_tokens``) laid over the pipeline's."""
        return Stream(self._native.stream(options or None))

    @property
    def stages(self) -> list[str]:
        """The stages a transcription goes through, by name."""
        return self._native.stages()

    def check_decode(self, **decode: Any) -> None:
        """Raises `ConfigError` when these `[decode]` settings would not
        check for this pipeline's model."""
        self._native.check_decode(decode or None)


def check(config: str | os.PathLike[str] | None = None, /, **settings: Any) -> list[str]:
    """The stages ``Pipeline(config, **settings)`` would run, by name, found
    without fetching or loading any model (as `pipeline check` does).

    Raises `ConfigError` naming every problem with the settings, so that a
    job can refuse a bad config before starting workers that load it.
    """
    path = None if config is None else os.fspath(config)
    return _native.check(path, settings or None)
