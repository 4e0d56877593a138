#!/usr/bin/env python3
"""The peer of `pipeline diarize` in scripts/bench-diarization: the same
diarization structure on the reference implementations of its two networks,
so that speed compares the same work done by PyTorch and by MLX.

  segmentation  pyannote.audio's Inference over 5 s chunks every --step s
                (skip_aggregation: the per-chunk outputs), with the
                registry's segmentation checkpoint in pyannote's own PyanNet
                (loaded as scripts/make_segmentation_fixtures.py does)
  embeddings    resemblyzer's VoiceEncoder.embed_utterance on the audio of
                each (chunk, local speaker): where it talks alone, or where it
                talks at all when that is under 0.5 s; none under 0.5 s
  clustering    scipy's average-linkage agglomerative clustering on cosine
                distance, cut at --threshold or at --num-speakers; clusters
                with less than 3 s of speech (the audio of their embeddings
                over the chunks that see each instant) join the nearest
                other one
  reconstruction  each local speaker to its nearest centroid, distinct within
                a chunk (Hungarian assignment); per frame, the chunks' mean
                count of active speakers, rounded, picks that many speakers by
                summed activity

Writes OUT.rttm and prints one JSON line of timings (seconds): load,
segmentation, embedding, clustering (with reconstruction), total.

Usage: bench_diarization_peer.py CHECKPOINT AUDIO.wav OUT.rttm
           [--step 2.00813] [--threshold 0.35] [--num-speakers N] [--threads 2]
Needs the peers venv (scripts/setup-peers.sh): torch, pyannote.audio,
resemblyzer, scipy.
"""
import argparse
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_segmentation_fixtures import load_model  # noqa: E402

RATE = 16000
CHUNK = 5 * RATE
ONSET = 0.5
MIN_EMBEDDING = RATE // 2


def read_wav(path):
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def speaker_audio(chunk, active, s, step, duration):
    """The samples of `chunk` where local speaker s talks alone (or at all)."""
    alone = active[:, s] & (active.sum(axis=1) == 1)
    frames = np.flatnonzero(alone)
    if len(frames) * step < MIN_EMBEDDING:
        frames = np.flatnonzero(active[:, s])
    if len(frames) * step < MIN_EMBEDDING:
        return None
    pieces = []
    for f in frames:
        start = int(max(f * step + duration / 2 - step / 2, 0))
        pieces.append(chunk[min(start, CHUNK):min(start + step, CHUNK)])
    return np.concatenate(pieces)


def main():
    from pyannote.audio import Inference
    from resemblyzer import VoiceEncoder
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.optimize import linear_sum_assignment

    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("audio")
    parser.add_argument("out")
    parser.add_argument("--step", type=float, default=119 * 270 / RATE)
    parser.add_argument("--threshold", type=float, default=0.2)
    parser.add_argument("--num-speakers", type=int)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    times = {}
    started = time.perf_counter()
    model = load_model(args.checkpoint)
    encoder = VoiceEncoder("cpu", verbose=False)
    times["load"] = time.perf_counter() - started

    clock = time.perf_counter()
    audio = read_wav(args.audio)
    inference = Inference(model, duration=5.0, step=args.step, skip_aggregation=True, batch_size=32)
    output = inference({"waveform": torch.from_numpy(audio)[None], "sample_rate": RATE})
    probabilities = output.data  # [chunks, frames, speakers]
    frames_sw = model.receptive_field
    step = int(round(frames_sw.step * RATE))
    duration = int(round(frames_sw.duration * RATE))
    times["segmentation"] = time.perf_counter() - clock

    clock = time.perf_counter()
    padded = np.concatenate([audio, np.zeros(CHUNK, dtype=np.float32)])
    hop = int(round(args.step * RATE))
    embeddings, owners, pieces = [], [], []
    for c, probs in enumerate(probabilities):
        active = probs > ONSET
        chunk = padded[c * hop:c * hop + CHUNK]
        for s in range(probs.shape[1]):
            piece = speaker_audio(chunk, active, s, step, duration)
            if piece is not None:
                embeddings.append(encoder.embed_utterance(piece))
                owners.append((c, s))
                pieces.append(piece)
    times["embedding"] = time.perf_counter() - clock

    clock = time.perf_counter()
    turns = []
    if embeddings:
        emb = np.stack(embeddings)
        if len(emb) == 1:
            labels = np.zeros(1, dtype=int)
        else:
            tree = linkage(emb, method="average", metric="cosine")
            if args.num_speakers:
                labels = fcluster(tree, args.num_speakers, criterion="maxclust") - 1
            else:
                labels = fcluster(tree, args.threshold, criterion="distance") - 1
        seconds = np.array([len(p) / RATE for p in pieces])
        weight = np.bincount(labels, weights=seconds)
        heavy = np.flatnonzero(weight >= 3.0 * CHUNK / hop)
        if len(heavy) and not args.num_speakers:
            means = np.stack([emb[labels == i].mean(axis=0) for i in heavy])
            labels = np.argmax(emb @ means.T, axis=1)
        labels = np.unique(labels, return_inverse=True)[1]
        k = labels.max() + 1
        centroids = np.stack([emb[labels == i].mean(axis=0) for i in range(k)])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        chunks, frames, speakers = probabilities.shape
        start_frame = [int(round(c * hop / step)) for c in range(chunks)]
        total = start_frame[-1] + frames
        count_sum, covering = np.zeros(total), np.zeros(total)
        score = np.zeros((k, total))
        by_chunk = {}
        for row, (c, s) in enumerate(owners):
            by_chunk.setdefault(c, []).append((s, row))
        for c, probs in enumerate(probabilities):
            active = np.where(probs > ONSET, probs, 0.0)
            g = slice(start_frame[c], start_frame[c] + frames)
            covering[g] += 1
            count_sum[g] += (active > 0).sum(axis=1)
            locals_ = by_chunk.get(c, [])
            if locals_:
                sim = np.stack([emb[row] for _, row in locals_]) @ centroids.T
                rows, cols = linear_sum_assignment(-sim)
                for r, col in zip(rows, cols):
                    score[col, g] += active[:, locals_[r][0]]
        count = np.rint(count_sum / np.maximum(covering, 1)).astype(int)
        order = np.argsort(-score, axis=0)
        selected = np.zeros_like(score, dtype=bool)
        for t in range(total):
            for i in order[:count[t], t]:
                if score[i, t] > 0:
                    selected[i, t] = True
        for i in range(k):
            on = np.concatenate([[False], selected[i], [False]]).astype(int)
            edges = np.flatnonzero(np.diff(on))
            for a, b in zip(edges[::2], edges[1::2]):
                turns.append(((a * step + duration / 2 - step / 2) / RATE,
                              ((b - 1) * step + duration / 2 + step / 2) / RATE, i))
    times["clustering"] = time.perf_counter() - clock
    times["total"] = time.perf_counter() - started

    stem = Path(args.audio).stem
    with open(args.out, "w") as out:
        for start, end, i in sorted(turns):
            start = max(start, 0.0)
            out.write(f"SPEAKER {stem} 1 {start:.3f} {end - start:.3f} <NA> <NA> SPEAKER_{i:02d} <NA> <NA>\n")
    print(json.dumps(times))


if __name__ == "__main__":
    main()
