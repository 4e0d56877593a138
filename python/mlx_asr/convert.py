"""`pipeline convert` from Python."""

from __future__ import annotations

import os
from collections.abc import Callable

from . import _native


def convert(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    family: str = "whisper",
    dtype: str | None = None,
    quantize: str | None = None,
    group_size: int = 64,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Converts a checkpoint (a file or model folder) into the MLX model
    folder `out`, as ``pipeline convert`` does; returns what was written.

    `family`: whisper, silero-vad, pyannote-segmentation, resemblyzer,
    wav2vec2, parakeet or qwen3-asr. `dtype` (f32, f16, bf16) and
    `quantize` (none, q8, q4, int8, in groups of `group_size`) apply to
    Whisper, Parakeet and Qwen3-ASR. The output appears only when complete;
    an existing one is replaced only with `force`, and only when a
    conversion wrote it. `progress(done, total)` hears of the tensors
    written (Whisper).

    Raises `ConfigError` for unknown names and `ModelError` for a checkpoint
    that cannot be converted, with the CLI's messages.
    """
    return _native.convert(
        os.fspath(source), os.fspath(out), family, dtype, quantize, group_size, force, progress
    )
