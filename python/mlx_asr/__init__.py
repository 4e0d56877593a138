"""Speech recognition on MLX arrays: Whisper, Parakeet and Qwen3-ASR with
voice activity detection, word alignment and speaker diarization, as the
`pipeline` CLI runs them.

    >>> from mlx_asr import Pipeline
    >>> pipeline = Pipeline(model="tiny.en")
    >>> pipeline.transcribe("jfk.wav").text
    ' And so my fellow Americans, ask not what your country can do for you, ...'
"""

from ._native import __version__
from .audio import SAMPLE_RATE, decode_audio
from .convert import convert
from .errors import AudioError, ConfigError, Error, ModelError
from .pipeline import Pipeline, check
from .stream import Stream, StreamEvent, TimedWord
from .transcript import Segment, SpeakerTurn, Transcript, Word

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "ConfigError",
    "Error",
    "ModelError",
    "Pipeline",
    "Segment",
    "SpeakerTurn",
    "Stream",
    "StreamEvent",
    "TimedWord",
    "Transcript",
    "Word",
    "__version__",
    "check",
    "convert",
    "decode_audio",
]
