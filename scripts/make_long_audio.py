#!/usr/bin/env python3
"""Assembles a long 16 kHz mono 16-bit WAV from the shared clips, for
scripts/bench-peers: the 16 LJ Speech clips (22.05 kHz, resampled) and the 4
LibriSpeech test-clean utterances, in a fixed order with 0.6 s of silence
between them, going round the set again until the file lasts at least
--min-seconds (default 300; one round is about 140 s). Deterministic: the same inputs give the same
bytes. Writes OUT.wav and OUT.txt, the concatenated reference texts (LJ
Speech's normalized text, LibriSpeech's transcripts) for WER.

With --shuffle SEED the same clips make a different file, for a WER over
more than one arrangement of the same speech: each round in its own random
order, each clip at a random level (-6 to 0 dB), gaps of 0.3-1.5 s, and
0-5 s of silence first, so that the 30-second windows fall elsewhere and
each clip follows other text. The same seed gives the same bytes.

With --clips DIR it writes each clip instead, as DIR/NN-name.wav (16 kHz
16-bit) with its reference in DIR/NN-name.txt, the set repeated --rounds
times (the many-short-files throughput benchmark).

Usage: make_long_audio.py OUT.wav [--data ../shared/data] [--min-seconds 300] [--shuffle SEED]
       make_long_audio.py --clips DIR [--rounds 3]
Needs numpy, scipy and av (PyAV): run it with the peers venv
(scripts/setup-peers.sh).
"""
import argparse
import itertools
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy.signal import resample_poly

RATE = 16000
GAP_SECONDS = 0.6


def read_any(path):
    """Mono float32 samples at 16 kHz from a wav/flac file: PyAV decodes and
    downmixes at the file's own rate, scipy resamples (polyphase)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        to_mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in to_mono.resample(frame)
        ]
        chunks += [out.to_ndarray().reshape(-1) for out in to_mono.resample(None)]
    pcm = np.concatenate(chunks).astype(np.float64)
    if rate != RATE:
        ratio = Fraction(RATE, rate)
        pcm = resample_poly(pcm, ratio.numerator, ratio.denominator)
    return pcm


def clips(data):
    """(path, reference text) of every shared clip, in a fixed order."""
    out = []
    lj = data / "ljspeech"
    texts = {}
    for line in (lj / "metadata.csv").read_text(encoding="utf-8").splitlines():
        fields = line.split("|")
        if len(fields) == 3:
            texts[fields[0]] = fields[2]
    for wav in sorted((lj / "wavs").glob("*.wav")):
        out.append((wav, texts[wav.stem]))
    for trans in sorted((data / "librispeech").rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.partition(" ")
            flac = trans.parent / f"{utt}.flac"
            if flac.exists():
                out.append((flac, text))
    if not out:
        raise SystemExit(f"no clips under {data}")
    return out


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?", help="WAV file to write (OUT.txt beside it)")
    ap.add_argument("--clips", type=Path, help="write the clips one by one into this folder")
    ap.add_argument("--rounds", type=int, default=3, help="with --clips: copies of the set")
    ap.add_argument("--data", type=Path, default=here.parent.parent / "shared" / "data")
    ap.add_argument("--min-seconds", type=float, default=300.0)
    ap.add_argument("--shuffle", type=int, help="seed of a random arrangement (see above)")
    args = ap.parse_args()

    loaded = [(read_any(path), text) for path, text in clips(args.data)]
    if args.clips:
        return write_clips(args.clips, loaded, clips(args.data), args.rounds)
    if args.out is None:
        ap.error("give OUT.wav or --clips DIR")
    arrange = fixed_arrangement if args.shuffle is None else shuffled_arrangement(args.shuffle)
    pieces, texts, total = [], [], 0
    for samples, text, lead in arrange(loaded):
        if total >= args.min_seconds * RATE:
            break
        pieces += [lead, samples]
        texts.append(text)
        total += len(lead) + len(samples)
    pieces.append(np.zeros(int(GAP_SECONDS * RATE)))
    pcm = write_wav(args.out, np.concatenate(pieces))
    args.out.with_suffix(".txt").write_text(" ".join(texts) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(pcm) / RATE:.1f} s, {len(texts)} clips")


def fixed_arrangement(loaded):
    """The clips in their fixed order, round after round, GAP_SECONDS apart:
    (samples, text, silence before) for ever."""
    gap = np.zeros(int(GAP_SECONDS * RATE))
    for n in itertools.count():
        samples, text = loaded[n % len(loaded)]
        yield samples, text, gap if n else gap[:0]


def shuffled_arrangement(seed):
    """A seeded random arrangement of the clips (see --shuffle)."""
    rng = np.random.default_rng(seed)

    def arrange(loaded):
        lead = rng.uniform(0.0, 5.0)
        while True:
            for i in rng.permutation(len(loaded)):
                samples, text = loaded[i]
                gain = 10.0 ** (rng.uniform(-6.0, 0.0) / 20.0)
                yield samples * gain, text, np.zeros(int(lead * RATE))
                lead = rng.uniform(0.3, 1.5)

    return arrange


def write_wav(path, samples):
    """16-bit PCM at 16 kHz, written whole or not at all."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    tmp.replace(path)
    return pcm


def write_clips(folder, loaded, sources, rounds):
    n = 0
    for _ in range(rounds):
        for (samples, text), (path, _) in zip(loaded, sources):
            stem = f"{n:03d}-{path.stem}"
            write_wav(folder / f"{stem}.wav", samples)
            (folder / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
            n += 1
    print(f"{folder}: {n} clips")


if __name__ == "__main__":
    main()
