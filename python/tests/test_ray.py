"""scripts/ray_transcribe.py on a Ray cluster this module starts: two
one-CPU actors on loopback, one of them killed mid-run.

The cluster (`ray start --head --block`, its own temporary folder and free
ports, so another Ray on the machine is left alone) lives for the module and
is stopped in the fixture's finalizer. The clips: 12 LJSpeech recordings
plus jfk.wav under another folder with the same stem as one of them, so the
outputs must keep the folders apart.
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import mlx_asr

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ray_transcribe.py"
DATA = ROOT.parent / "shared" / "data"
JFK = ROOT / "examples" / "audio" / "jfk.wav"
LJSPEECH = [DATA / "ljspeech" / "wavs" / f"LJ001-{n:04d}.wav" for n in range(1, 13)]
CONFIG = 'model = "tiny.en"\nquantize = "auto"\ndevice = "cpu"\n'
FORMATS = ("json", "txt")
JOB_TIMEOUT_S = 180
# The cluster listens on loopback only; without this, Ray 2.60 turns token
# authentication on when ~/.ray/auth_token exists, and a driver given an
# explicit address would then need RAY_AUTH_MODE=token as well.
RAY_ENV = dict(os.environ, RAY_AUTH_MODE="disabled")


def load_script():
    spec = importlib.util.spec_from_file_location("ray_transcribe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def descendants(pid: int) -> set[int]:
    """The processes below pid, from /proc."""
    children = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[parent].append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def wait_for(condition, timeout_s: float, what: str):
    """condition()'s first truthy value, polled every 0.1 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def ray_address():
    # Short: Ray's unix sockets live below it and must fit 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    log = temp / "start.log"
    port, *others = free_ports(7)
    command = [
        str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
        "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp),
        "--object-store-memory", str(100 * 2**20),
    ]
    for flag, free in zip(
        ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
         "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"],
        others,
    ):
        command += [flag, str(free)]
    with open(log, "w") as output:
        head = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=RAY_ENV)
    try:
        wait_for(lambda: head.poll() is not None or "Ray runtime started" in log.read_text(),
                 60, "ray start")
        assert head.poll() is None, log.read_text()
        yield f"127.0.0.1:{port}"
    finally:
        # Ray's daemons and workers (sessions of their own, so not one
        # process group): collected now, killed if still there after
        # SIGTERM's grace.
        started = descendants(head.pid)
        head.terminate()
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for pid in started | {head.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    missing = [p for p in [*LJSPEECH, JFK] if not p.is_file()]
    if missing:
        pytest.skip(f"test audio not present: {missing[0]}")
    work = tmp_path_factory.mktemp("ray-job")
    (work / "config.toml").write_text(CONFIG)
    return work


@pytest.fixture(scope="module")
def clip_tree(work) -> Path:
    """clips/lj/LJ001-00NN.wav and clips/other/LJ001-0001.wav (jfk.wav)."""
    tree = work / "clips"
    for clip in LJSPEECH:
        link = tree / "lj" / clip.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(clip)
    (tree / "other").mkdir()
    (tree / "other" / LJSPEECH[0].name).symlink_to(JFK)
    return tree


def relative_bases(clip_tree: Path) -> list[Path]:
    return sorted(p.relative_to(clip_tree).with_suffix("") for p in clip_tree.rglob("*.wav"))


@pytest.fixture(scope="module")
def reference(work, clip_tree) -> dict[Path, mlx_asr.Transcript]:
    """Each clip transcribed by one Pipeline in this process."""
    pipeline = mlx_asr.Pipeline(str(work / "config.toml"))
    return {base: pipeline.transcribe(clip_tree / base.with_suffix(".wav"))
            for base in relative_bases(clip_tree)}


def run_script(work: Path, source: Path, output: Path, address: str, *extra: str,
               ledger: Path | None = None) -> subprocess.Popen:
    """The script in the background, its output in output.parent/NAME.log."""
    command = [sys.executable, str(SCRIPT), str(work / "config.toml"), str(source),
               "--output", str(output), "--address", address,
               "--summary-json", str(output.with_suffix(".summary.json")), *extra]
    for fmt in FORMATS:
        command += ["--format", fmt]
    if ledger:
        command += ["--ledger", str(ledger)]
    log = open(output.with_suffix(".log"), "w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=RAY_ENV)


@dataclass
class Job:
    returncode: int
    log: str
    summary: dict


def finish(process: subprocess.Popen, output: Path) -> Job:
    process.wait(timeout=JOB_TIMEOUT_S)
    summary_file = output.with_suffix(".summary.json")
    return Job(
        process.returncode,
        output.with_suffix(".log").read_text(),
        json.loads(summary_file.read_text()) if summary_file.exists() else {},
    )


def ledger_lines(ledger: Path) -> list[dict]:
    """The whole lines written so far."""
    if not ledger.exists():
        return []
    text = ledger.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


@dataclass
class KilledRun:
    job: Job
    output: Path
    ledger: Path
    victim: int


@pytest.fixture(scope="module")
def killed_run(ray_address, work, clip_tree) -> KilledRun:
    """The job, with the actor that finished a batch first SIGKILLed while
    it decodes its next one."""
    output, ledger = work / "out", work / "ledger.jsonl"
    process = run_script(work, clip_tree, output, ray_address, "--batch-size", "2",
                         ledger=ledger)

    def first_actor():
        assert process.poll() is None, output.with_suffix(".log").read_text()
        lines = ledger_lines(ledger)
        return lines and lines[0]["pid"]

    victim = wait_for(first_actor, JOB_TIMEOUT_S, "a first file done")
    time.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    return KilledRun(finish(process, output), output, ledger, victim)


def test_a_killed_actor_leaves_every_file_transcribed_once(killed_run, clip_tree, reference):
    job = killed_run.job
    assert job.returncode == 0, job.log
    bases = relative_bases(clip_tree)
    expected = {Path(f"{base}.{fmt}") for base in bases for fmt in FORMATS}
    written = {p for p in files_under(killed_run.output) if not p.name.startswith(".")}
    assert written == expected
    for base in bases:
        txt = (killed_run.output / f"{base}.txt").read_text()
        assert txt == reference[base].render("txt"), base
        assert json.loads((killed_run.output / f"{base}.json").read_text())["text"] \
            == reference[base].text, base
    # The ledger has a line per transcription that finished: a batch Ray ran
    # again after the kill redid nothing already written.
    lines = ledger_lines(killed_run.ledger)
    done = collections.Counter(Path(line["path"]).relative_to(clip_tree).with_suffix("")
                               for line in lines)
    assert done == collections.Counter(bases), done
    assert job.summary["transcribed"] + job.summary["skipped_by_actor"] == len(bases)
    assert job.summary["failed"] == 0
    assert job.summary["actors"] == 2
    # The killed actor's process is gone and did not finish another file.
    assert not Path(f"/proc/{killed_run.victim}").exists() or \
        "State:\tZ" in Path(f"/proc/{killed_run.victim}/status").read_text()
    assert reference[Path("other") / LJSPEECH[0].stem].text != \
        reference[Path("lj") / LJSPEECH[0].stem].text


def test_a_second_run_transcribes_only_what_is_missing(killed_run, ray_address, work, clip_tree):
    output, ledger = killed_run.output, killed_run.ledger
    before = {p: (output / p).stat().st_mtime_ns for p in files_under(output)}
    ledger_before = ledger_lines(ledger)

    job = finish(run_script(work, clip_tree, output, ray_address, ledger=ledger), output)
    assert job.returncode == 0, job.log
    assert job.summary["transcribed"] == 0
    assert job.summary["already_done"] == len(relative_bases(clip_tree))
    assert ledger_lines(ledger) == ledger_before

    # One output lost: that file alone is redone, its other output kept.
    lost = Path("other") / f"{LJSPEECH[0].stem}.txt"
    kept = lost.with_suffix(".json")
    text = (output / lost).read_text()
    (output / lost).unlink()
    job = finish(run_script(work, clip_tree, output, ray_address, ledger=ledger), output)
    assert job.returncode == 0, job.log
    assert job.summary["transcribed"] == 1
    assert [line["path"] for line in ledger_lines(ledger)[len(ledger_before):]] \
        == [str(clip_tree / lost.with_suffix(".wav"))]
    assert (output / lost).read_text() == text
    assert (output / kept).stat().st_mtime_ns == before[kept]
    assert {p: (output / p).stat().st_mtime_ns for p in files_under(output) if p != lost} \
        == {p: t for p, t in before.items() if p != lost}


def test_a_file_that_is_not_audio_gets_an_error_record(ray_address, work):
    source = work / "mixed"
    source.mkdir()
    for clip in LJSPEECH[:2]:
        (source / clip.name).symlink_to(clip)
    (source / "notes.wav").write_text("not a recording\n")
    output = work / "mixed-out"
    job = finish(run_script(work, source, output, ray_address), output)
    assert job.returncode == 1, job.log
    assert job.summary["transcribed"] == 2 and job.summary["failed"] == 1
    record = (output / "notes.error.txt").read_text()
    assert str(source / "notes.wav") in record
    assert files_under(output) == {Path("notes.error.txt")} | {
        Path(f"{clip.stem}.{fmt}") for clip in LJSPEECH[:2] for fmt in FORMATS}


def test_inputs_that_would_share_outputs_are_refused(work):
    source = work / "twins"
    source.mkdir()
    (source / "a.wav").symlink_to(JFK)
    (source / "a.flac").symlink_to(JFK)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(work / "config.toml"), str(source),
         "--output", str(work / "twins-out")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert str(source / "a.flac") in result.stderr and str(source / "a.wav") in result.stderr
    assert not (work / "twins-out").exists()


def test_a_config_that_cannot_work_is_refused_before_ray_starts(work):
    config = work / "bad.toml"
    config.write_text('model = "tiny.en"\n[decode]\nbeam_size = 0\n')
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(config), str(JFK), "--output", str(work / "bad-out"),
         "--address", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.endswith(
        f"error: {config}: invalid pipeline settings: decode.beam_size: must be at least 1\n")
    assert not (work / "bad-out").exists()


def test_an_output_is_never_replaced(tmp_path):
    script = load_script()
    target = tmp_path / "sub" / "x.txt"
    assert script.write_new(target, b"first\n")
    assert not script.write_new(target, b"second\n")
    assert target.read_bytes() == b"first\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.txt"]
