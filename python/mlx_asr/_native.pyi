"""The native module (Rust, PyO3). Use the `mlx_asr` package's classes,
which wrap these."""

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

_Audio = str | PathLike[str] | npt.NDArray[np.float32]

class NativePipeline:
    def __init__(self, config: str | None = None, settings: dict[str, Any] | None = None) -> None: ...
    def transcribe(
        self,
        audio: _Audio,
        decode: dict[str, Any] | None = None,
        progress: Callable[[float, float | None], None] | None = None,
    ) -> NativeTranscript: ...
    def transcribe_batch(
        self,
        audios: Sequence[_Audio],
        decode: dict[str, Any] | None = None,
        progress: Callable[[int, float, float | None], None] | None = None,
    ) -> list[NativeTranscript | Exception]: ...
    def stream(self, options: dict[str, Any] | None = None) -> NativeStream: ...
    def stages(self) -> list[str]: ...
    def check_decode(self, decode: dict[str, Any] | None = None) -> None: ...

class NativeTranscript:
    @property
    def duration(self) -> float: ...
    def render(self, format: str) -> str: ...

class NativeStream:
    @property
    def seconds(self) -> float: ...
    def push(self, samples: npt.NDArray[np.float32]) -> list[dict[str, Any]]: ...
    def finish(self) -> list[dict[str, Any]]: ...

def check(config: str | None = None, settings: dict[str, Any] | None = None) -> list[str]: ...
def convert(
    source: str,
    out: str,
    family: str = "whisper",
    dtype: str | None = None,
    quantize: str | None = None,
    group_size: int = 64,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> str: ...
def decode_audio(name: str, data: bytes) -> npt.NDArray[np.float32]: ...
def load_audio(path: str) -> npt.NDArray[np.float32]: ...
