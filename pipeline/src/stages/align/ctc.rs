//! CTC forced alignment: the most likely way a CTC model's frames spell a
//! known token sequence (Viterbi over CTC's topology: a blank may sit
//! before, between and after the tokens; a token may last several frames;
//! two equal tokens in a row need a blank between them), and which frames
//! each token took. A wav2vec2 aligner times words with it.

/// The frames one token of the sequence took on the best path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenSpan {
    /// Index of the token in the sequence.
    pub index: usize,
    /// First frame, and one past the last.
    pub start: usize,
    pub end: usize,
    /// Mean log-probability of the token over its frames.
    pub score: f32,
}

/// The best CTC path of `tokens` through `log_probs` (`frames × vocab`,
/// row-major log-probabilities) with `blank` as the blank token: each
/// token's frames and the path's total log-probability. `None` when the
/// frames are too few to spell the tokens.
pub fn forced_align(
    log_probs: &[f32],
    vocab: usize,
    tokens: &[usize],
    blank: usize,
) -> Option<(Vec<TokenSpan>, f32)> {
    let frames = log_probs.len() / vocab.max(1);
    // Blank, token 0, blank, token 1, …, blank.
    let states: Vec<usize> = std::iter::once(blank)
        .chain(tokens.iter().flat_map(|&t| [t, blank]))
        .collect();
    let n = states.len();
    if frames == 0 {
        return tokens.is_empty().then(|| (Vec::new(), 0.0));
    }
    let lp = |t: usize, s: usize| log_probs[t * vocab + states[s]];
    // May state `s` be entered from `s - 2` (skipping the blank between)?
    let skips = |s: usize| s >= 2 && states[s] != blank && states[s] != states[s - 2];
    let mut score = vec![f32::NEG_INFINITY; n];
    score[0] = lp(0, 0);
    if n > 1 {
        score[1] = lp(0, 1);
    }
    // Per frame and state, how many states back the best predecessor is.
    let mut back = vec![0u8; frames * n];
    for t in 1..frames {
        let previous = score.clone();
        for s in 0..n {
            let mut best = (previous[s], 0u8);
            if s >= 1 && previous[s - 1] > best.0 {
                best = (previous[s - 1], 1);
            }
            if skips(s) && previous[s - 2] > best.0 {
                best = (previous[s - 2], 2);
            }
            score[s] = best.0 + lp(t, s);
            back[t * n + s] = best.1;
        }
    }
    let last = if n >= 2 && score[n - 2] > score[n - 1] {
        n - 2
    } else {
        n - 1
    };
    let total = score[last];
    if total == f32::NEG_INFINITY {
        return None;
    }
    let mut path = vec![0usize; frames];
    let mut s = last;
    for t in (0..frames).rev() {
        path[t] = s;
        s -= usize::from(back[t * n + s]);
    }
    let mut spans: Vec<TokenSpan> = Vec::with_capacity(tokens.len());
    for (t, &s) in path.iter().enumerate() {
        if s % 2 == 0 {
            continue;
        }
        let index = s / 2;
        match spans.last_mut() {
            Some(span) if span.index == index => {
                span.end = t + 1;
                span.score += lp(t, s);
            }
            _ => spans.push(TokenSpan {
                index,
                start: t,
                end: t + 1,
                score: lp(t, s),
            }),
        }
    }
    for span in &mut spans {
        span.score /= (span.end - span.start) as f32;
    }
    Some((spans, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CTC's collapse: repeats merged, then blanks removed.
    fn collapse(path: &[usize], blank: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut previous = None;
        for &p in path {
            if Some(p) != previous && p != blank {
                out.push(p);
            }
            previous = Some(p);
        }
        out
    }

    /// The best score over every frame labelling that collapses to `tokens`.
    fn brute_force(log_probs: &[f32], vocab: usize, tokens: &[usize]) -> Option<f32> {
        let frames = log_probs.len() / vocab;
        let mut best: Option<f32> = None;
        for code in 0..vocab.pow(frames as u32) {
            let path: Vec<usize> = (0..frames)
                .map(|t| code / vocab.pow(t as u32) % vocab)
                .collect();
            if collapse(&path, 0) != tokens {
                continue;
            }
            let score: f32 = path
                .iter()
                .enumerate()
                .map(|(t, &p)| log_probs[t * vocab + p])
                .sum();
            best = Some(best.map_or(score, |b: f32| b.max(score)));
        }
        best
    }

    fn random_log_probs(frames: usize, vocab: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut out = Vec::new();
        for _ in 0..frames {
            let row: Vec<f32> = (0..vocab)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0
                })
                .collect();
            let norm = row.iter().map(|x| x.exp()).sum::<f32>().ln();
            out.extend(row.iter().map(|x| x - norm));
        }
        out
    }

    #[test]
    fn the_viterbi_path_is_the_best_of_all_labellings() {
        let cases: [&[usize]; 6] = [&[1], &[1, 2], &[2, 2], &[1, 2, 1], &[2, 2, 2], &[]];
        for (seed, tokens) in cases.iter().enumerate() {
            for frames in 1..=6 {
                let lp = random_log_probs(frames, 3, seed as u64 * 7 + frames as u64);
                let expected = brute_force(&lp, 3, tokens);
                let found = forced_align(&lp, 3, tokens, 0);
                match (expected, found) {
                    (None, None) => {}
                    (Some(e), Some((spans, total))) => {
                        assert!(
                            (e - total).abs() < 1e-4,
                            "{tokens:?} {frames}: {e} vs {total}"
                        );
                        assert_eq!(spans.len(), tokens.len());
                        for (i, span) in spans.iter().enumerate() {
                            assert_eq!(span.index, i);
                            assert!(span.start < span.end && span.end <= frames);
                        }
                        assert!(spans.windows(2).all(|w| w[0].end <= w[1].start));
                    }
                    other => panic!("{tokens:?} {frames} frames: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn clear_emissions_give_the_frames_of_each_token() {
        // Frames say: blank, a, a, blank, b, blank (vocab: blank, a, b).
        let certain = |k: usize| -> [f32; 3] {
            let mut row = [-20.0; 3];
            row[k] = 0.0;
            row
        };
        let lp: Vec<f32> = [0, 1, 1, 0, 2, 0]
            .iter()
            .flat_map(|&k| certain(k))
            .collect();
        let (spans, _) = forced_align(&lp, 3, &[1, 2], 0).unwrap();
        assert_eq!(
            spans.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(),
            [(1, 3), (4, 5)]
        );
        assert!(spans.iter().all(|s| s.score > -1e-3));
        // Two equal tokens need a blank between them: 3 frames spell "a a"
        // but not "a a a", and 1 frame not even "a a".
        assert!(forced_align(&lp[..9], 3, &[1, 1], 0).is_some());
        assert!(forced_align(&lp[..9], 3, &[1, 1, 1], 0).is_none());
        assert!(forced_align(&lp[..3], 3, &[1, 1], 0).is_none());
    }
}
