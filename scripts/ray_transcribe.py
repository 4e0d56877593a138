#!/usr/bin/env python3
"""Transcribe many audio files on a Ray cluster with mlx_asr.

The files, a folder (its audio files, subfolders included) or a manifest (a
text file of paths, one a line, relative to the manifest's folder; blank
lines and lines starting with # are skipped), go through Ray Data:
`from_items` of their paths (never their audio: every node reads the files
itself, so they must be on storage all nodes see) then `map_batches` with a
pool of actors, each holding one `mlx_asr.Pipeline` built from CONFIG, each
batch decoded with `Pipeline.transcribe_batch`.

Outputs mirror the inputs' paths under OUTPUT: ROOT/a/x.wav writes
OUTPUT/a/x.json (and x.txt, ... per --format), so equal stems in different
folders do not collide; ROOT defaults to the deepest folder holding every
input (pin it with --root when the file list changes between runs). Two
inputs that would write the same name (x.wav and x.flac side by side) are
refused before anything runs, as is a CONFIG whose settings do not check
(`mlx_asr.check`). Each output is written to a temporary file in
its folder and hard-linked into place, which never replaces an existing
output: a final name always holds a whole file.

Resumable: a file whose outputs all exist is skipped, by the driver before
scheduling and by the actor again just before decoding, so a batch Ray runs
again after a lost actor does not redo what it already wrote. A file that
fails gets OUTPUT/<name>.error.txt (the message; removed once it succeeds)
and the others go on; the exit status is then 1. A killed actor process is
restarted by Ray and its batch run again: Ray Data's actor pools default to
max_restarts=-1 and max_task_retries=-1 (Ray 2.60).

Usage:
  scripts/ray_transcribe.py CONFIG SOURCE --output DIR [--format json ...]
      [--address local|auto|HOST:PORT] [--batch-size 8] [--actors N]
      [--threads-per-actor 1] [--root DIR] [--ledger FILE]
      [--summary-json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import sys
import time
import tomllib
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlx_asr
import ray

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a"})
FORMATS = ("txt", "json", "srt", "vtt", "tsv", "rttm")
ERROR_SUFFIX = ".error.txt"
# A replacement for an actor that dies while loading its model (a node lost
# during start-up); a config that cannot load fails this many times, then
# the job stops.
ACTOR_INIT_DEATHS_TOLERATED = 3


class InputError(Exception):
    """A manifest, folder or option that cannot be run; the message names it."""


def absolute(path: Path) -> Path:
    """path made absolute, `..` folded, symlinks kept (outputs follow the
    names given, not where links point)."""
    return Path(os.path.abspath(path))


def list_inputs(source: Path) -> list[Path]:
    """The audio files of a folder (recursively, sorted) or of a manifest."""
    if source.is_dir():
        return sorted(
            absolute(p)
            for p in source.rglob("*")
            if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
        )
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    paths = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = absolute(source.parent / entry)
        if not path.is_file():
            raise InputError(f"{source}:{number}: {entry}: no such file")
        paths.append(path)
    return list(dict.fromkeys(paths))


def common_root(paths: Iterable[Path]) -> Path:
    """The deepest folder that holds every path."""
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def output_bases(paths: list[Path], root: Path, output_dir: Path) -> list[Path]:
    """OUTPUT/<path relative to root, without its extension> for each input;
    refuses inputs outside root and two inputs with the same base."""
    bases: dict[Path, Path] = {}
    for path in paths:
        try:
            relative = path.relative_to(root)
        except ValueError:
            raise InputError(f"{path}: not under --root {root}") from None
        base = output_dir / relative.parent / relative.stem
        if base in bases:
            raise InputError(
                f"{bases[base]} and {path} would write the same outputs {base}.*"
            )
        bases[base] = path
    return list(bases)


def output_path(base: Path | str, fmt: str) -> Path:
    """Where an input's output in format fmt goes (base + "." + fmt: a stem
    with dots keeps them)."""
    return Path(f"{base}.{fmt}")


def is_done(base: Path | str, formats: Iterable[str]) -> bool:
    """Whether every asked output of an input exists (outputs are written
    whole or not at all)."""
    return all(output_path(base, fmt).exists() for fmt in formats)


def create_beside(target: Path) -> tuple[int, Path]:
    """A new hidden file in target's folder (created if need be), mode 0666
    less the umask as for any output (mkstemp's 0600 would stay on it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary


def write_new(target: Path, data: bytes) -> bool:
    """Write target through a temporary file in its folder and a hard link,
    so the name never holds part of a file; an existing target is left as
    it is (False)."""
    fd, temporary = create_beside(target)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, target)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


def write_error(base: Path, message: str) -> None:
    """Record why an input failed, replacing an older record whole."""
    target = Path(f"{base}{ERROR_SUFFIX}")
    fd, temporary = create_beside(target)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(message + "\n")
    os.replace(temporary, target)


def append_line(path: Path, record: dict) -> None:
    """One JSON line appended in a single write (O_APPEND: lines from many
    processes do not interleave)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def naming(path: str, error: Exception) -> str:
    """The error's message, led by the input's path unless it names it."""
    message = str(error)
    return message if path in message else f"{path}: {message}"


class Transcriber:
    """Ray Data's callable class: one Pipeline per actor, loaded once."""

    def __init__(self, config: str, formats: list[str], ledger: str | None) -> None:
        self.pipeline = mlx_asr.Pipeline(config)
        self.formats = formats
        self.ledger = Path(ledger) if ledger else None
        self.node = socket.gethostname()

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        bases = [Path(b) for b in batch["base"]]
        status = ["skipped"] * len(paths)
        audio = [0.0] * len(paths)
        errors = [""] * len(paths)
        # Again here, not only at the driver: Ray runs a batch a second
        # time when its actor died, maybe after writing part of it.
        todo = [i for i, base in enumerate(bases) if not is_done(base, self.formats)]
        if todo:
            started = time.monotonic()
            try:
                results = self.pipeline.transcribe_batch([paths[i] for i in todo])
            except mlx_asr.Error as error:
                results = [error] * len(todo)
            seconds = time.monotonic() - started
            for i, result in zip(todo, results):
                try:
                    if isinstance(result, Exception):
                        raise result
                    self._write(bases[i], result)
                except (mlx_asr.Error, OSError) as error:
                    status[i], errors[i] = "failed", naming(paths[i], error)
                    write_error(bases[i], errors[i])
                    continue
                status[i], audio[i] = "transcribed", result.duration
                if self.ledger:
                    append_line(self.ledger, {
                        "path": paths[i], "node": self.node, "pid": os.getpid(),
                        "audio_s": result.duration, "batch_s": round(seconds, 3),
                    })
        # Peak resident memory of this actor so far (Linux: KiB), for sizing.
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"path": paths, "status": status, "audio_s": audio, "error": errors,
                "rss_mb": [rss_mb] * len(paths)}

    def _write(self, base: Path, transcript: mlx_asr.Transcript) -> None:
        for fmt in self.formats:
            # An output already there came from an earlier try of this same
            # file (its actor died before writing the rest): kept as it is.
            write_new(output_path(base, fmt), transcript.render(fmt).encode())
        Path(f"{base}{ERROR_SUFFIX}").unlink(missing_ok=True)


@dataclass
class Summary:
    """What a run did; rates count the files transcribed in this run."""

    listed: int = 0
    already_done: int = 0
    transcribed: int = 0
    skipped_by_actor: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    actors: int = 0
    peak_actor_rss_mb: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def files_per_min(self) -> float:
        return 60 * self.transcribed / self.wall_s if self.wall_s else 0.0

    @property
    def audio_hours_per_hour(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {
            "files_per_min": self.files_per_min,
            "audio_hours_per_hour": self.audio_hours_per_hour,
        }

    def report(self) -> str:
        lines = [
            f"files: {self.listed} listed, {self.already_done} already done, "
            f"{self.transcribed} transcribed, {self.failed} failed"
            + (f", {self.skipped_by_actor} found done by an actor" if self.skipped_by_actor else ""),
            f"wall {self.wall_s:.1f} s on {self.actors} actors: {self.files_per_min:.1f} files/min, "
            f"{self.audio_s / 3600:.3f} h of audio, {self.audio_hours_per_hour:.1f} audio-hours/hour, "
            f"peak actor RSS {self.peak_actor_rss_mb:.0f} MB",
        ]
        lines += [f"failed: {failure}" for failure in self.failures]
        return "\n".join(lines)


def config_formats(config: Path) -> list[str]:
    """The config's `formats`, else txt (as `pipeline run`); a config that
    cannot be read stops the run here rather than in every actor."""
    try:
        table = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"{config}: {error}") from None
    return list(table.get("formats", ["txt"]))


def plan(
    inputs: list[Path], output_dir: Path, formats: list[str], root: Path | None = None
) -> list[dict[str, str]]:
    """The inputs still to do, each with its output base; refuses names
    that collide before anything runs."""
    if not inputs:
        return []
    bases = output_bases(inputs, root or common_root(inputs), absolute(output_dir))
    return [
        {"path": str(path), "base": str(base)}
        for path, base in zip(inputs, bases)
        if not is_done(base, formats)
    ]


def run(
    config: Path,
    items: list[dict[str, str]],
    formats: list[str],
    *,
    batch_size: int = 8,
    actors: int | None = None,
    threads_per_actor: int = 1,
    ledger: Path | None = None,
) -> Summary:
    """Transcribe plan()'s items on the Ray cluster this process is
    connected to."""
    started = time.monotonic()
    summary = Summary()
    if not items:
        return summary
    cluster_cpus = int(ray.cluster_resources().get("CPU", 0))
    summary.actors = actors or max(1, cluster_cpus // threads_per_actor)
    threads = str(threads_per_actor)
    # The actors are shipped this module's code, so it need not be
    # importable on the workers when another script imports it.
    if __name__ != "__main__":
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.data.DataContext.get_current().max_consecutive_actor_init_deaths = (
        ACTOR_INIT_DEATHS_TOLERATED
    )
    dataset = ray.data.from_items(
        items, override_num_blocks=math.ceil(len(items) / batch_size)
    ).map_batches(
        Transcriber,
        fn_constructor_kwargs={
            "config": str(config.resolve()),
            "formats": formats,
            "ledger": str(ledger.resolve()) if ledger else None,
        },
        batch_size=batch_size,
        # One batch queued per actor: a free actor takes the next batch, so
        # no actor idles at the end while another still holds a queue.
        compute=ray.data.ActorPoolStrategy(
            size=summary.actors, max_tasks_in_flight_per_actor=1
        ),
        num_cpus=threads_per_actor,
        runtime_env={
            "env_vars": {"MLX_ASR_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        },
    )
    for row in dataset.iter_rows():
        summary.peak_actor_rss_mb = max(summary.peak_actor_rss_mb, float(row["rss_mb"]))
        if row["status"] == "transcribed":
            summary.transcribed += 1
            summary.audio_s += float(row["audio_s"])
        elif row["status"] == "failed":
            summary.failed += 1
            summary.failures.append(row["error"])
            print(f"failed: {row['error']}", file=sys.stderr)
        else:
            summary.skipped_by_actor += 1
    summary.wall_s = time.monotonic() - started
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Outputs mirror the inputs' paths under --output (ROOT/a/x.wav -> "
        "OUTPUT/a/x.json), so equal stems in different folders do not collide; "
        "inputs that would still share a name are refused. Files whose outputs "
        "exist are skipped (the run resumes); a failed file gets "
        "OUTPUT/<name>.error.txt and the exit status is 1.",
    )
    parser.add_argument("config", type=Path, help="run config (TOML) each actor's Pipeline is built from")
    parser.add_argument("source", type=Path, help="a folder of audio files or a manifest (one path a line)")
    parser.add_argument("--output", "-o", type=Path, required=True, help="folder the outputs go to")
    parser.add_argument("--format", "-f", dest="formats", action="append", choices=FORMATS,
                        help="output format, repeatable (default: the config's formats, else txt)")
    parser.add_argument("--root", type=Path,
                        help="folder the output paths are relative to (default: the deepest folder holding every input)")
    parser.add_argument("--address", default="local",
                        help="Ray cluster to join: HOST:PORT, 'auto' (the one on this node) or "
                        "'local' (default: start one for this run)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="files per transcribe_batch call (default 8, as the CLI's "
                        "decode.batch_size: the files decoded side by side)")
    parser.add_argument("--actors", type=int,
                        help="actors (default: the cluster's CPUs / --threads-per-actor)")
    parser.add_argument("--threads-per-actor", type=int, default=1,
                        help="CPUs reserved and kernel threads per actor (default 1)")
    parser.add_argument("--ledger", type=Path,
                        help="append a JSON line per file transcribed (path, node, pid, audio seconds)")
    parser.add_argument("--summary-json", type=Path, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or (args.actors is not None and args.actors < 1) or args.threads_per_actor < 1:
        parser.error("--batch-size, --actors and --threads-per-actor must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        formats = config_formats(args.config)
        mlx_asr.check(args.config)
        formats = args.formats or formats
        inputs = list_inputs(args.source)
        items = plan(inputs, args.output, formats, absolute(args.root) if args.root else None)
    except (InputError, mlx_asr.ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(inputs)} files, {len(inputs) - len(items)} already done", file=sys.stderr)
    if items:
        ray.init(address=args.address, logging_level="WARNING")
    try:
        summary = run(
            args.config, items, formats, batch_size=args.batch_size, actors=args.actors,
            threads_per_actor=args.threads_per_actor, ledger=args.ledger,
        )
    except ray.exceptions.ActorDiedError as error:
        if not error.actor_init_failed:
            raise
        # Ray hands the actor's traceback over as text; its last line is
        # mlx_asr's error (the CLI's message).
        reason = error.error_msg.strip().splitlines()[-1]
        print(f"error: {args.config}: no actor could build its Pipeline: {reason}", file=sys.stderr)
        return 2
    summary.listed, summary.already_done = len(inputs), len(inputs) - len(items)
    print(summary.report())
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
