"""mlx_asr against the CLI on the same model: the same text and files,
the same errors; numpy input equal to file input; threads equal to one."""

from __future__ import annotations

import io
import json
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import mlx_asr
from mlx_asr import AudioError, ConfigError, Pipeline

from conftest import JFK, REPO, run_cli, run_cli_failing


def cli_outputs(tmp_path: Path, audio: Path, extra: str = "") -> tuple[str, Path]:
    """`pipeline run` on `audio` with tiny.en: what it prints, and its outputs."""
    out = tmp_path / "cli"
    config = tmp_path / "run.toml"
    config.write_text(
        f'model = "tiny.en"\ninput = "{audio}"\noutput_dir = "{out}"\n'
        f'formats = ["txt", "json", "srt", "vtt", "tsv"]\n{extra}'
    )
    return run_cli("run", config, "--quiet").stdout.strip(), out


def test_jfk_gives_the_cli_text_and_files(pipeline: Pipeline, tmp_path: Path) -> None:
    printed, out = cli_outputs(tmp_path, JFK)
    transcript = pipeline.transcribe(JFK)
    assert transcript.text.strip() == printed
    assert "ask not what your country can do for you" in printed
    assert transcript.language == "en"
    assert transcript.duration == pytest.approx(11.0, abs=0.01)
    for fmt in ("txt", "json", "srt", "vtt", "tsv"):
        assert transcript.render(fmt) == (out / f"jfk.{fmt}").read_text(), fmt
    cli_json = json.loads((out / "jfk.json").read_text())
    assert transcript.to_dict() == cli_json
    assert [s.text for s in transcript.segments] == [s["text"] for s in cli_json["segments"]]
    assert transcript.words == []
    assert all(s.words is None for s in transcript.segments)


def test_segments_and_words_have_faster_whisper_fields(pipeline: Pipeline) -> None:
    transcript = pipeline.transcribe(JFK, word_timestamps=True)
    segment = transcript.segments[0]
    for name in ("id", "seek", "start", "end", "text", "tokens", "avg_logprob",
                 "compression_ratio", "no_speech_prob", "words", "temperature"):
        assert hasattr(segment, name), name
    words = transcript.words
    assert "".join(w.word for w in words).strip() == transcript.text.strip()
    assert all(w.start <= w.end for w in words)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:]))
    assert all(0.0 <= w.probability <= 1.0 for w in words)


def test_keyword_arguments_lay_over_the_config_file(tmp_path: Path) -> None:
    printed, _ = cli_outputs(tmp_path, JFK, "[decode]\nword_timestamps = true\n")
    config = tmp_path / "run.toml"
    from_file = Pipeline(config)
    assert from_file.transcribe(JFK).words
    assert from_file.transcribe(JFK).text.strip() == printed
    overridden = Pipeline(config, decode={"word_timestamps": None})
    assert overridden.transcribe(JFK).words == []


def pcm16_of(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV read by the standard library."""
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_numpy_input_equals_file_input(pipeline: Pipeline) -> None:
    from_file = pipeline.transcribe(JFK)
    pcm = pcm16_of(JFK)
    for samples in (pcm, pcm.astype(np.float32) / 32768.0, mlx_asr.decode_audio(JFK)):
        from_array = pipeline.transcribe(samples)
        assert from_array.text == from_file.text
        assert from_array.segments == from_file.segments
    assert np.array_equal(mlx_asr.decode_audio(JFK), pcm.astype(np.float32) / 32768.0)
    assert pipeline.transcribe(JFK.read_bytes()).text == from_file.text
    with open(JFK, "rb") as f:
        assert pipeline.transcribe(f).text == from_file.text


@pytest.mark.parametrize(
    ("audio", "error", "message"),
    [
        ("/nonexistent/a.wav", AudioError, "/nonexistent/a.wav: No such file"),
        (REPO / "Cargo.toml", AudioError, "Cargo.toml: unsupported or unrecognized audio"),
        (b"RIFF not really", AudioError, "bytes: "),
        (io.BytesIO(b""), AudioError, "file object"),
        (np.zeros((2, 16000), dtype=np.float32), ValueError, "1-D array"),
        (np.array([0.0, np.nan] * 8000, dtype=np.float32), AudioError,
         "samples: non-finite samples (NaN or infinity) at 0.00 s"),
        (np.zeros(16000, dtype=np.int32), TypeError, "int32"),
        (42, TypeError, "not int"),
    ],
)
def test_bad_input_raises_with_the_cli_message(
    pipeline: Pipeline, audio: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        pipeline.transcribe(audio)
    assert message in str(raised.value)


def test_a_missing_file_has_the_cli_message(pipeline: Pipeline, tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    config = tmp_path / "run.toml"
    config.write_text(f'model = "tiny.en"\ninput = ["{JFK}", "{missing}"]\n')
    with pytest.raises(AudioError) as raised:
        pipeline.transcribe(missing)
    # The CLI checks inputs before loading the model; `pipeline check` words it.
    cli = run_cli_failing("run", config)
    assert str(missing) in cli and str(missing) in str(raised.value)
    assert str(raised.value) == f"transcribing {missing}: {missing}: No such file or directory (os error 2)"


def test_bad_settings_raise_config_errors(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="decode.beam_size"):
        pipeline.transcribe(JFK, beam_size=0)
    with pytest.raises(ConfigError, match="unknown field `bem_size`"):
        pipeline.transcribe(JFK, bem_size=5)
    with pytest.raises(ConfigError, match="unknown field `decod`"):
        Pipeline(model="tiny.en", decod={})
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "tiny.en"\n[decode]\nbeam_size = "five"\n')
    with pytest.raises(ConfigError) as raised:
        Pipeline(bad)
    assert str(raised.value).startswith(f"{bad}: ")
    assert str(bad) in run_cli_failing("run", bad)
    with pytest.raises(ConfigError):
        pipeline.stream(step=0.0)
    with pytest.raises(mlx_asr.ModelError, match="loading model"):
        Pipeline(model=str(tmp_path))


def test_check_plans_the_pipeline_without_loading_a_model(pipeline: Pipeline, tmp_path: Path) -> None:
    assert mlx_asr.check(model="tiny.en") == pipeline.stages
    # The config's folder exists but holds no aligner: loading it fails,
    # planning does not look inside.
    config = tmp_path / "aligned.toml"
    config.write_text('model = "tiny.en"\n[decode]\nbeam_size = 0\n[align]\nmodel = "."\n')
    with pytest.raises(ConfigError) as raised:
        mlx_asr.check(config)
    assert str(raised.value) == (
        f"{config}: invalid pipeline settings: decode.beam_size: must be at least 1")
    assert mlx_asr.check(config, decode={"beam_size": 1})[-1] == "align"
    with pytest.raises(ConfigError) as raised:
        mlx_asr.check(config, decode={"best_of": 0})
    assert str(raised.value).startswith(f"{config} with the keyword arguments: invalid")
    with pytest.raises(mlx_asr.ModelError, match="align.model"):
        Pipeline(config, decode={"beam_size": 1})
    with pytest.raises(ConfigError, match="^keyword arguments: .*model: \"no-such-model\" is not"):
        mlx_asr.check(model="no-such-model")


def test_batch_results_in_order_with_failures_in_place(pipeline: Pipeline, clips: list[Path]) -> None:
    alone = [pipeline.transcribe(c).text for c in clips]
    seen: set[int] = set()
    results = pipeline.transcribe_batch(
        [b"not audio", *clips, "/nonexistent.wav"],
        batch_size=4,
        progress=lambda i, done, total: seen.add(i),
    )
    assert [r.text for r in results[1:-1]] == alone
    assert isinstance(results[0], AudioError) and "bytes: " in str(results[0])
    assert isinstance(results[-1], AudioError)
    assert "/nonexistent.wav" in str(results[-1])
    assert seen == set(range(1, len(clips) + 1))


def test_two_threads_give_the_results_of_one(clips: list[Path]) -> None:
    # A fresh pipeline, first used by the threads, not by the thread that built it.
    shared = Pipeline(model="tiny.en")
    work = clips * 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(lambda c: shared.transcribe(c).text, work))
    alone = [shared.transcribe(c).text for c in work]
    assert together == alone


def test_the_gil_is_released_while_the_model_works(pipeline: Pipeline) -> None:
    worker = threading.Thread(target=pipeline.transcribe, args=(JFK,))
    ticks = 0
    worker.start()
    while worker.is_alive():
        ticks += 1
    worker.join()
    # Holding the GIL, the transcription would leave this loop a few turns.
    assert ticks > 10_000


def test_progress_reaches_the_recording_length(pipeline: Pipeline) -> None:
    seen: list[tuple[float, float | None]] = []
    pipeline.transcribe(JFK, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == pytest.approx(11.0, abs=0.01)
    assert all(total == pytest.approx(11.0, abs=0.01) for _, total in seen)


def words_of(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Levenshtein distance over words, by the textbook recurrence."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        diagonal, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref != hyp))
    return row[-1] / len(reference)


def test_a_stream_transcribes_as_it_is_fed(pipeline: Pipeline) -> None:
    samples = mlx_asr.decode_audio(JFK)
    stream = pipeline.stream(step=1.0)
    events = []
    for at in range(0, len(samples), 1600):
        events += stream.push(samples[at : at + 1600])
    assert stream.seconds == pytest.approx(11.0, abs=0.01)
    before_finish = [e for e in events if e.type == "final"]
    events += stream.finish()
    finals = [e for e in events if e.type == "final"]
    # Words became final before the end, in order, each within the audio.
    assert before_finish
    assert all(a.start <= b.start for a, b in zip(finals, finals[1:]))
    assert all(0.0 <= e.start <= e.end <= 11.0 for e in finals)
    heard = words_of(" ".join(e.text for e in finals))
    assert word_error_rate(words_of(pipeline.transcribe(JFK).text), heard) <= 0.1
    with pytest.raises(mlx_asr.Error, match="finished"):
        stream.push(samples[:1600])
    with pytest.raises(AudioError, match=r"samples: non-finite samples \(NaN or infinity\) at 0.50 s"):
        pipeline.stream().push(np.where(np.arange(16000) == 8000, np.inf, 0.0))


def test_convert_writes_what_the_cli_writes(tmp_path: Path) -> None:
    source = REPO / "converters/tests/fixtures/tiny-whisper/hf-safetensors"
    run_cli("convert", "--from", source, "--out", tmp_path / "cli", "--quantize", "q8")
    seen: list[tuple[int, int]] = []
    wrote = mlx_asr.convert(source, tmp_path / "py", quantize="q8", progress=lambda d, t: seen.append((d, t)))
    assert wrote.startswith(f"wrote {tmp_path / 'py'}")
    assert seen and seen[-1][0] == seen[-1][1]
    for name in ("config.json", "weights.safetensors"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    with pytest.raises(mlx_asr.ModelError, match="exists"):
        mlx_asr.convert(source, tmp_path / "py")
    with pytest.raises(ConfigError, match="unknown family"):
        mlx_asr.convert(source, tmp_path / "x", family="whisperx")


def test_logs_on_standard_error_when_asked(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = f"import mlx_asr; mlx_asr.Pipeline(model='tiny.en').transcribe({str(JFK)!r})"
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    env = {**os.environ, "MLX_ASR_LOG": "debug"}
    logged = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert "DEBUG recordings{count=1}" in logged.stderr
