"""The exceptions mlx_asr raises. Their messages are those the `pipeline`
CLI prints for the same problem."""


class Error(Exception):
    """Base of every error raised by mlx_asr."""


class ConfigError(Error, ValueError):
    """Settings that do not parse or check: a config file, keyword
    arguments, or per-call decode options."""


class AudioError(Error):
    """A recording that cannot be read or decoded (missing, not audio,
    empty, truncated, non-finite samples)."""


class ModelError(Error):
    """A model that cannot be fetched, converted or loaded."""
