#!/usr/bin/env python3
"""Reference outputs of Resemblyzer's own GE2E speaker encoder
(resemblyzer==0.1.4, VoiceEncoder("cpu"), its bundled pretrained.pt) on
utterances cut from ../shared/data/diarization, for the speaker-encoder
parity tests (models/tests/speaker_encoder.rs):

  mel_filters        librosa's mel filterbank (sr 16000, n_fft 400, 40 mels)  [40, 201]
  utt_file           which file each utterance comes from, an index into FILES [U]
  utt_start, utt_end its sample range in that file (16 kHz)                    [U]
  mel0               audio.wav_to_mel_spectrogram of utterance 0 as cut        [501, 40]
  partial_counts     partials per utterance                                     [U]
  partial_starts     first mel frame of each partial (wav_slices[i].start/160)  [P]
  partials           partial embeddings, all utterances one after the other     [P, 256]
  embeddings         embed_utterance of each utterance                          [U, 256]

Utterances are given to embed_utterance as the 16-bit PCM read as
float32 / 32768, without preprocess_wav (no volume normalization, no silence
trimming): what the diarizer gives the Rust encoder.

Needs the peer venv (resemblyzer, librosa, torch, numpy). Usage:
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_speaker_fixtures.py \
      ../shared models/tests/fixtures/speaker-encoder.npz
"""
import importlib.metadata
import sys
import types
import wave
from pathlib import Path

import librosa
import numpy as np

# resemblyzer imports webrtcvad (used only by preprocess_wav, not here), whose
# module asks pkg_resources for its version; the venv's setuptools no longer
# ships pkg_resources, so answer that one question from importlib.metadata.
if "pkg_resources" not in sys.modules:
    try:
        import pkg_resources  # noqa: F401
    except ModuleNotFoundError:
        stub = types.ModuleType("pkg_resources")
        stub.get_distribution = lambda name: types.SimpleNamespace(
            version=importlib.metadata.version(name)
        )
        sys.modules["pkg_resources"] = stub

from resemblyzer import VoiceEncoder, audio  # noqa: E402

# Same order as FILES in models/tests/speaker_encoder.rs.
FILES = [
    "data/diarization/meeting-4spk/mixture.wav",
    "data/diarization/sample.wav",
]

# (file index, start s, end s): two utterances of each of three meeting
# speakers while they hold the floor alone (mixture.rttm: FEE013, FEE016,
# MEO015; the per-speaker tracks in sources/ carry the others' crosstalk at
# full level, so the mixture's single-speaker turns are the cleaner cut), two
# of each sample.wav speaker (sample.rttm: speaker90, speaker91), one
# shorter than a partial (0.88 s) and one much shorter (0.3 s), which
# embed_utterance pads.
UTTERANCES = [
    (0, 8.0, 13.0),
    (0, 13.0, 18.0),
    (0, 30.0, 34.9),
    (0, 37.8, 42.1),
    (0, 45.0, 50.0),
    (0, 50.0, 53.7),
    (1, 10.6, 14.4),
    (1, 27.85, 30.0),
    (1, 14.8, 17.9),
    (1, 21.9, 27.5),
    (1, 8.32, 9.2),
    (1, 6.69, 6.99),
]


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def main(shared, out):
    shared = Path(shared)
    tracks = [read_wav(shared / f) for f in FILES]
    encoder = VoiceEncoder("cpu", verbose=False)

    utt_file, utt_start, utt_end = [], [], []
    counts, starts, partials, embeddings = [], [], [], []
    for file, t0, t1 in UTTERANCES:
        start, end = round(t0 * 16000), round(t1 * 16000)
        wav = tracks[file][start:end]
        embed, partial, slices = encoder.embed_utterance(wav, return_partials=True)
        utt_file.append(file)
        utt_start.append(start)
        utt_end.append(end)
        counts.append(len(slices))
        starts += [s.start // 160 for s in slices]
        partials.append(partial)
        embeddings.append(embed)

    first = tracks[utt_file[0]][utt_start[0]:utt_end[0]]
    np.savez_compressed(
        out,
        mel_filters=librosa.filters.mel(sr=16000, n_fft=400, n_mels=40).astype(np.float32),
        utt_file=np.array(utt_file, dtype=np.int64),
        utt_start=np.array(utt_start, dtype=np.int64),
        utt_end=np.array(utt_end, dtype=np.int64),
        mel0=audio.wav_to_mel_spectrogram(first),
        partial_counts=np.array(counts, dtype=np.int64),
        partial_starts=np.array(starts, dtype=np.int64),
        partials=np.concatenate(partials).astype(np.float32),
        embeddings=np.stack(embeddings).astype(np.float32),
    )
    e = np.stack(embeddings)
    np.set_printoptions(precision=2, linewidth=200)
    print("partials per utterance:", counts)
    print("cosine similarities:\n", e @ e.T)


if __name__ == "__main__":
    main(*sys.argv[1:])
