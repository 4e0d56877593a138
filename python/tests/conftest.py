"""Shared fixtures: the repository's test audio, the CLI built by `cargo
test`/`cargo build`, and one pipeline per session (loading is the slow part)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import mlx_asr

REPO = Path(__file__).resolve().parents[2]
JFK = REPO / "examples" / "audio" / "jfk.wav"
LIBRISPEECH = REPO.parent / "shared/data/librispeech/LibriSpeech/test-clean/1089/134691"


def cli_binary() -> Path:
    """The `pipeline` binary: $MLX_ASR_CLI, else the newest build here."""
    if "MLX_ASR_CLI" in os.environ:
        return Path(os.environ["MLX_ASR_CLI"])
    builds = [REPO / "target" / p / "pipeline" for p in ("release", "debug")]
    built = [b for b in builds if b.is_file()]
    if not built:
        pytest.fail("no pipeline binary: run `cargo build` first (or set MLX_ASR_CLI)")
    return max(built, key=lambda b: b.stat().st_mtime)


def run_cli(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli_binary(), *map(str, args)], capture_output=True, text=True, check=True
    )


def run_cli_failing(*args: str | os.PathLike[str]) -> str:
    """What the CLI prints on standard error for a run that must fail."""
    done = subprocess.run([cli_binary(), *map(str, args)], capture_output=True, text=True)
    assert done.returncode != 0, done.stdout
    return done.stderr


@pytest.fixture(scope="session")
def pipeline() -> mlx_asr.Pipeline:
    return mlx_asr.Pipeline(model="tiny.en")


@pytest.fixture(scope="session")
def clips() -> list[Path]:
    """jfk.wav and a few LibriSpeech clips (when shared/ is there)."""
    return [JFK, *sorted(LIBRISPEECH.glob("*.flac"))[:3]]
