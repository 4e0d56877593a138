#!/usr/bin/env python3
"""Diarization error rates by pyannote.metrics, for the test of the Rust
DER (pipeline/src/der.rs): the shared references (sample.rttm,
meeting-4spk/mixture.rttm) against hypotheses derived from them by fixed
edits that exercise every part of the error — boundaries shifted, turns
dropped (miss), invented (false alarm), speakers swapped or merged
(confusion), overlap collapsed — scored with overlap, at collars 0, 0.25
and 0.5 (pyannote's convention: half before, half after each boundary).
A speaker's overlapping turns in an edited hypothesis are joined (pyannote
would count such a speaker twice at once, which no diarizer outputs).

Writes JSON: [{reference, hypothesis: [[start, end, speaker], ...],
collar, der, missed, false_alarm, confusion, total}, ...], reference being
the RTTM's path under ../shared/data/diarization.

Usage: make_der_fixtures.py ../shared/data pipeline/tests/fixtures/der.json
Needs pyannote.metrics (the peers venv).
"""
import json
import sys
from pathlib import Path

from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

REFERENCES = ["sample.rttm", "meeting-4spk/mixture.rttm"]


def read(path):
    turns = []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return turns


def edits(turns):
    names = sorted({s for _, _, s in turns})
    swap = {a: b for a, b in zip(names, names[1:] + names[:1])}
    yield "shifted", [(s + 0.3, e + 0.1, n) for s, e, n in turns]
    yield "dropped", [t for i, t in enumerate(turns) if i % 3]
    yield "invented", turns + [(e + 0.05, e + 0.8, "ghost") for s, e, n in turns[::4]]
    yield "swapped", [(s, e, swap[n] if i % 2 else n) for i, (s, e, n) in enumerate(turns)]
    yield "merged", [(s, e, names[0] if n == names[-1] else n) for s, e, n in turns]
    yield "renamed", [(s, e, f"spk{names.index(n)}") for s, e, n in turns]


def annotation(turns):
    a = Annotation()
    for i, (s, e, n) in enumerate(turns):
        a[Segment(s, e), i] = n
    return a


def main(data, out):
    cases = []
    for ref_name in REFERENCES:
        ref_turns = read(Path(data) / "diarization" / ref_name)
        for label, edited in edits(ref_turns):
            joined = annotation(edited).support()
            hyp = [(seg.start, seg.end, name) for seg, _, name in joined.itertracks(yield_label=True)]
            for collar in (0.0, 0.25, 0.5):
                metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
                d = metric(annotation(ref_turns), joined, detailed=True)
                cases.append({
                    "reference": ref_name, "edit": label, "collar": collar,
                    "hypothesis": [[round(s, 4), round(e, 4), n] for s, e, n in hyp],
                    "der": d["diarization error rate"], "missed": d["missed detection"],
                    "false_alarm": d["false alarm"], "confusion": d["confusion"], "total": d["total"],
                })
    Path(out).write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{out}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:3])
