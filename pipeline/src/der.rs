//! Diarization error rate, as NIST's md-eval and pyannote.metrics define
//! it with overlapped speech scored: over the scored time, each instant
//! counts its reference speakers; missed speech, false alarm and speaker
//! confusion are counted per speaker, under the one-to-one mapping of
//! hypothesis to reference speakers that maximizes their total overlap.
//! A collar of `c` seconds leaves `c / 2` on each side of every reference
//! boundary unscored (pyannote.metrics' convention; md-eval's `-c 0.25`
//! is pyannote's `collar=0.5`). Time is sampled every millisecond.

use pathfinding::prelude::{kuhn_munkres, Matrix};

use crate::transcript::SpeakerTurn;

/// The parts of the error, in seconds of speaker time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiarizationErrors {
    pub missed: f64,
    pub false_alarm: f64,
    pub confusion: f64,
    /// Reference speaker time scored.
    pub total: f64,
}

impl DiarizationErrors {
    /// (missed + false alarm + confusion) / total; 0 for an empty reference.
    pub fn rate(&self) -> f64 {
        if self.total == 0.0 {
            return 0.0;
        }
        (self.missed + self.false_alarm + self.confusion) / self.total
    }
}

const TICKS_PER_SECOND: f64 = 1000.0;

fn tick(seconds: f64) -> usize {
    (seconds.max(0.0) * TICKS_PER_SECOND).round() as usize
}

/// Per speaker name, in order of first appearance, which ticks it talks in.
fn activity(turns: &[SpeakerTurn], ticks: usize) -> Vec<Vec<bool>> {
    let mut names: Vec<&str> = Vec::new();
    let mut out: Vec<Vec<bool>> = Vec::new();
    for turn in turns {
        let index = names
            .iter()
            .position(|&n| n == turn.speaker)
            .unwrap_or_else(|| {
                names.push(&turn.speaker);
                out.push(vec![false; ticks]);
                names.len() - 1
            });
        let (from, to) = (tick(turn.start), tick(turn.end).min(ticks));
        out[index][from.min(to)..to].fill(true);
    }
    out
}

/// The error of `hypothesis` against `reference`, `collar` seconds around
/// reference boundaries (half before, half after) unscored.
pub fn diarization_errors(
    reference: &[SpeakerTurn],
    hypothesis: &[SpeakerTurn],
    collar: f64,
) -> DiarizationErrors {
    let end = reference
        .iter()
        .chain(hypothesis)
        .map(|t| tick(t.end))
        .max()
        .unwrap_or(0);
    let mut scored = vec![true; end];
    for turn in reference {
        for boundary in [turn.start, turn.end] {
            let from = tick(boundary - collar / 2.0);
            let to = tick(boundary + collar / 2.0).min(end);
            scored[from.min(to)..to].iter_mut().for_each(|s| *s = false);
        }
    }
    let refs = activity(reference, end);
    let hyps = activity(hypothesis, end);
    let mut errors = DiarizationErrors::default();
    let mut overlap = vec![vec![0i64; hyps.len()]; refs.len()];
    for t in (0..end).filter(|&t| scored[t]) {
        let active = |all: &[Vec<bool>]| all.iter().filter(|a| a[t]).count();
        let (n_ref, n_hyp) = (active(&refs), active(&hyps));
        errors.total += n_ref as f64;
        errors.missed += n_ref.saturating_sub(n_hyp) as f64;
        errors.false_alarm += n_hyp.saturating_sub(n_ref) as f64;
        errors.confusion += n_ref.min(n_hyp) as f64;
        for r in (0..refs.len()).filter(|&r| refs[r][t]) {
            for (h, hyp) in hyps.iter().enumerate() {
                overlap[r][h] += i64::from(hyp[t]);
            }
        }
    }
    errors.confusion -= best_mapping_overlap(&overlap) as f64;
    for part in [
        &mut errors.missed,
        &mut errors.false_alarm,
        &mut errors.confusion,
        &mut errors.total,
    ] {
        *part /= TICKS_PER_SECOND;
    }
    errors
}

/// The largest total overlap of a one-to-one mapping between reference
/// (rows) and hypothesis (columns) speakers.
fn best_mapping_overlap(overlap: &[Vec<i64>]) -> i64 {
    let rows = overlap.len();
    let cols = overlap.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return 0;
    }
    // The assignment wants no more rows than columns: pad with zeros.
    let n = rows.max(cols);
    let square = Matrix::from_fn(n, n, |(r, c)| {
        overlap
            .get(r)
            .and_then(|row| row.get(c))
            .copied()
            .unwrap_or(0)
    });
    kuhn_munkres(&square).0
}

/// Speaker turns of the `SPEAKER` lines of RTTM text (other lines ignored).
pub fn parse_rttm(text: &str) -> Result<Vec<SpeakerTurn>, String> {
    let mut turns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"SPEAKER") {
            continue;
        }
        let number = |k: usize| -> Result<f64, String> {
            fields
                .get(k)
                .and_then(|f| f.parse::<f64>().ok())
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("line {}: field {} is not a time", i + 1, k + 1))
        };
        let (start, duration) = (number(3)?, number(4)?);
        let speaker = fields
            .get(7)
            .ok_or_else(|| format!("line {}: no speaker name", i + 1))?;
        turns.push(SpeakerTurn {
            start,
            end: start + duration,
            speaker: speaker.to_string(),
        });
    }
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start: f64, end: f64, speaker: &str) -> SpeakerTurn {
        SpeakerTurn {
            start,
            end,
            speaker: speaker.into(),
        }
    }

    #[test]
    fn errors_are_split_into_miss_false_alarm_and_confusion() {
        let reference = [
            turn(0.0, 10.0, "a"),
            turn(10.0, 20.0, "b"),
            turn(15.0, 20.0, "c"),
        ];
        // x is a (best mapping), y is b from 12 s, and 2 s of a is called y.
        let hypothesis = [
            turn(0.0, 8.0, "x"),
            turn(8.0, 10.0, "y"),
            turn(12.0, 22.0, "y"),
        ];
        let e = diarization_errors(&reference, &hypothesis, 0.0);
        assert!((e.total - 25.0).abs() < 1e-9);
        // 10-12: b missed; 15-20: c missed (one hypothesis for two speakers).
        assert!((e.missed - 7.0).abs() < 1e-9, "{e:?}");
        assert!((e.false_alarm - 2.0).abs() < 1e-9, "{e:?}");
        assert!((e.confusion - 2.0).abs() < 1e-9, "{e:?}");
        assert!((e.rate() - 11.0 / 25.0).abs() < 1e-9);
    }

    #[test]
    fn a_collar_leaves_boundaries_unscored_and_names_do_not_matter() {
        let reference = [turn(0.0, 5.0, "a"), turn(5.0, 10.0, "b")];
        let hypothesis = [turn(0.0, 5.2, "B"), turn(5.2, 10.0, "A")];
        let strict = diarization_errors(&reference, &hypothesis, 0.0);
        assert!((strict.confusion - 0.2).abs() < 1e-9, "{strict:?}");
        let lenient = diarization_errors(&reference, &hypothesis, 0.5);
        assert_eq!(lenient.rate(), 0.0, "{lenient:?}");
        assert!((lenient.total - 9.0).abs() < 1e-9, "{lenient:?}");
    }

    #[test]
    fn rttm_lines_become_turns() {
        let text = "SPEAKER f 1 1.50 2.25 <NA> <NA> alice <NA> <NA>\nSPKR-INFO f 1 <NA> <NA> <NA> unknown alice <NA> <NA>\n";
        assert_eq!(parse_rttm(text).unwrap(), [turn(1.5, 3.75, "alice")]);
        assert!(parse_rttm("SPEAKER f 1 x 2 <NA> <NA> a")
            .unwrap_err()
            .contains("line 1"));
    }
}
