"""Recordings as the native module takes them: a path, or 16 kHz mono
float32 samples."""

from __future__ import annotations

import os
from typing import IO, Union

import numpy as np

from . import _native

#: A path, encoded audio (bytes or a binary file object), or 16 kHz mono
#: samples (floats in [-1, 1], or int16 PCM).
AudioInput = Union[str, "os.PathLike[str]", bytes, IO[bytes], np.ndarray]

SAMPLE_RATE = 16_000


def samples_of(array: np.ndarray) -> np.ndarray:
    """1-D samples as contiguous float32; int16 PCM is scaled to [-1, 1)."""
    array = np.asarray(array)
    if array.ndim != 1:
        raise ValueError(
            f"audio: a 1-D array of 16 kHz mono samples is expected, not shape {array.shape}"
        )
    if array.dtype == np.int16:
        return array.astype(np.float32) / 32768.0
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"audio: float or int16 samples are expected, not {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def native_audio(audio: AudioInput) -> str | np.ndarray:
    """What the native module takes for `audio`."""
    if isinstance(audio, np.ndarray):
        return samples_of(audio)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return _native.decode_audio("bytes", bytes(audio))
    if hasattr(audio, "read"):
        name = getattr(audio, "name", None)
        return _native.decode_audio(name if isinstance(name, str) else "file object", audio.read())
    if isinstance(audio, (str, os.PathLike)):
        return os.fspath(audio)
    raise TypeError(
        "audio: a path, bytes, a binary file object or a 1-D array of 16 kHz samples is "
        f"expected, not {type(audio).__name__}"
    )


def decode_audio(audio: str | os.PathLike[str] | bytes | IO[bytes]) -> np.ndarray:
    """A recording (any format `pipeline run` reads) as 16 kHz mono float32
    samples, as the pipeline hears it."""
    samples = native_audio(audio)
    return samples if isinstance(samples, np.ndarray) else _native.load_audio(samples)
