#!/usr/bin/env python3
"""Assembles a long multi-speaker recording with its reference RTTM, for the
diarization benchmark (scripts/bench-diarization): the shared diarization
clips (../shared/data/diarization/sample.wav, 2 speakers, and
meeting-4spk/mixture.wav, 4 speakers) one after the other with 1 s of
silence between them, round after round, until the file lasts at least
--min-seconds (default 1800). Each round scales the clips by a different
level (-6 to 0 dB, fixed sequence), so the same speakers come back at other
levels, as they do over a long meeting. The reference RTTM is the clips'
own turns shifted to where each copy lies; speakers keep their names, so a
speaker who comes back is the same speaker. Deterministic.

Usage: make_long_meeting.py OUT.wav [--data ../shared/data] [--min-seconds 1800]
Writes OUT.wav (16 kHz mono 16-bit) and OUT.rttm (file id = OUT's stem).
Needs numpy.
"""
import argparse
import wave
from pathlib import Path

import numpy as np

RATE = 16000
CLIPS = ["sample", "meeting-4spk/mixture"]
LEVELS_DB = [0.0, -3.0, -6.0, -1.5, -4.5]


def read_wav(path):
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)


def read_rttm(path):
    turns = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            turns.append((float(fields[3]), float(fields[4]), fields[7]))
    return turns


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--min-seconds", type=float, default=1800.0)
    args = parser.parse_args()
    root = args.data / "diarization"
    clips = [(read_wav(root / f"{c}.wav"), read_rttm(root / f"{c}.rttm")) for c in CLIPS]
    gap = np.zeros(RATE, dtype=np.float32)
    pieces, lines, at, round_ = [], [], 0, 0
    stem = args.out.stem
    while at < args.min_seconds * RATE:
        gain = 10 ** (LEVELS_DB[round_ % len(LEVELS_DB)] / 20)
        for audio, turns in clips:
            pieces.append(audio * gain)
            for start, duration, speaker in turns:
                lines.append(f"SPEAKER {stem} 1 {at / RATE + start:.3f} {duration:.3f} "
                             f"<NA> <NA> {speaker} <NA> <NA>")
            at += len(audio)
            pieces.append(gap)
            at += len(gap)
        round_ += 1
    pcm = np.clip(np.round(np.concatenate(pieces)), -32768, 32767).astype("<i2")
    with wave.open(str(args.out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    args.out.with_suffix(".rttm").write_text("\n".join(lines) + "\n")
    print(f"{args.out}: {len(pcm) / RATE:.0f} s, {round_} rounds, {len(lines)} turns")


if __name__ == "__main__":
    main()
