//! Word times from cross-attention (openai-whisper's `timing.py` method):
//! the decoder re-reads a window's text in one pass, the attention of its
//! alignment heads over the audio frames is normalized and median-filtered,
//! and dynamic time warping finds the monotonic token-to-frame path.

use mlx::{Array, Dtype};

use super::constants::TOKENS_PER_SECOND;
use super::tokenizer::WhisperTokenizer;
use super::Whisper;

const MEDIAN_FILTER_WIDTH: usize = 7;

/// A word with its times (seconds from the window start), tokens and the
/// mean probability of its tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Times the words of `text_tokens` decoded from a window whose encoder
/// output is `audio` and whose content spans `num_frames` mel frames.
/// `sot_sequence`: the window's start-of-transcript tokens; `spaces`: the
/// language separates words with spaces.
pub fn find_alignment(
    model: &Whisper,
    tokenizer: &WhisperTokenizer,
    audio: &Array,
    sot_sequence: &[u32],
    text_tokens: &[u32],
    num_frames: usize,
    spaces: bool,
) -> mlx::Result<Vec<WordTiming>> {
    if text_tokens.is_empty() {
        return Ok(Vec::new());
    }
    let special = &tokenizer.special;
    let mut tokens: Vec<i32> = sot_sequence.iter().map(|&t| t as i32).collect();
    tokens.push(special.no_timestamps as i32);
    tokens.extend(text_tokens.iter().map(|&t| t as i32));
    tokens.push(special.eot as i32);
    let n = tokens.len();
    let mut state = model.decoder.start(audio)?;
    let input = Array::from_slice(&tokens, &[1, n as i32])?;
    let (logits, cross) = model
        .decoder
        .forward_with_cross_logits(&input, &mut state)?;

    let probabilities =
        text_token_probabilities(&logits, sot_sequence.len(), text_tokens, special.eot)?;
    let frames = (num_frames / 2).max(1) as i32;
    let heads = model
        .alignment_heads
        .iter()
        .map(|&(layer, head)| {
            let layer = cross.get(layer).ok_or_else(|| {
                mlx::Error::Mlx(format!("alignment head in layer {layer}: no such layer"))
            })?;
            layer
                .slice_axis(1, head as i32, head as i32 + 1)?
                .slice_axis(3, 0, frames)
        })
        .collect::<mlx::Result<Vec<_>>>()?;
    let refs: Vec<&Array> = heads.iter().collect();
    // [heads, tokens, frames]: softmax over frames, standardized over tokens.
    let weights = mlx::concatenate(&refs, 1)?
        .reshape(&[heads.len() as i32, n as i32, frames])?
        .astype(Dtype::F32)?
        .softmax(&[-1], true)?;
    let mean = weights.mean(&[-2], true)?;
    let centered = weights.subtract(&mean)?;
    let std = centered.square()?.mean(&[-2], true)?.sqrt()?;
    let standardized = centered.divide(&std)?.to_vec::<f32>()?;
    let frames = frames as usize;
    let mut matrix = vec![0f32; n * frames];
    for head in standardized.chunks_exact(n * frames) {
        for (row, out) in head
            .chunks_exact(frames)
            .zip(matrix.chunks_exact_mut(frames))
        {
            for (o, v) in out.iter_mut().zip(median_filter(row, MEDIAN_FILTER_WIDTH)) {
                *o += v / heads.len() as f32;
            }
        }
    }
    // Rows from <|notimestamps|> to the last text token.
    let rows = &matrix[sot_sequence.len() * frames..(n - 1) * frames];
    let cost: Vec<f32> = rows.iter().map(|v| -v).collect();
    let (text_indices, time_indices) = dtw(&cost, rows.len() / frames, frames);

    let mut with_eot = text_tokens.to_vec();
    with_eot.push(special.eot);
    let words = tokenizer
        .split_to_word_tokens(&with_eot, spaces)
        .map_err(mlx::Error::Mlx)?;
    if words.len() <= 1 {
        return Ok(Vec::new());
    }
    // The time of each token's first frame on the path.
    let jump_times: Vec<f64> = (0..text_indices.len())
        .filter(|&i| i == 0 || text_indices[i] != text_indices[i - 1])
        .map(|i| time_indices[i] as f64 / TOKENS_PER_SECOND)
        .collect();
    let mut out = Vec::with_capacity(words.len() - 1);
    let mut first = 0;
    for (word, word_tokens) in words.into_iter().take_while(|(_, t)| t[0] < special.eot) {
        let last = first + word_tokens.len();
        let probs = &probabilities[first..last];
        out.push(WordTiming {
            word,
            tokens: word_tokens,
            start: jump_times[first],
            end: jump_times[last],
            probability: probs.iter().sum::<f32>() / probs.len() as f32,
        });
        first = last;
    }
    Ok(out)
}

/// Probability of each text token given the ones before it (over the text
/// vocabulary only, as openai-whisper computes it).
fn text_token_probabilities(
    logits: &Array,
    sot_len: usize,
    text_tokens: &[u32],
    eot: u32,
) -> mlx::Result<Vec<f32>> {
    let rows = logits
        .slice_axis(1, sot_len as i32, (sot_len + text_tokens.len()) as i32)?
        .slice_axis(2, 0, eot as i32)?
        .astype(Dtype::F32)?
        .softmax(&[-1], true)?
        .to_vec::<f32>()?;
    Ok(text_tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| rows[i * eot as usize + t as usize])
        .collect())
}

/// Median of each `width`-wide neighbourhood, the row reflect-padded at both
/// ends (rows shorter than half the width are returned as they are).
pub fn median_filter(row: &[f32], width: usize) -> Vec<f32> {
    let pad = width / 2;
    if row.len() <= pad {
        return row.to_vec();
    }
    let at = |i: isize| -> f32 {
        let n = row.len() as isize;
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        row[j as usize]
    };
    (0..row.len() as isize)
        .map(|i| {
            let mut window: Vec<f32> = (i - pad as isize..=i + pad as isize).map(at).collect();
            window.sort_by(f32::total_cmp);
            window[pad]
        })
        .collect()
}

/// Dynamic time warping over a row-major `rows × cols` cost: the cheapest
/// monotonic path from the top-left to the bottom-right cell, as
/// (row indices, column indices). Ties prefer the horizontal step, as
/// openai-whisper's implementation does.
pub fn dtw(cost: &[f32], rows: usize, cols: usize) -> (Vec<usize>, Vec<usize>) {
    let w = cols + 1;
    let mut total = vec![f32::INFINITY; (rows + 1) * w];
    let mut step = vec![0u8; (rows + 1) * w];
    total[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let (diagonal, up, left) = (
                total[(i - 1) * w + j - 1],
                total[(i - 1) * w + j],
                total[i * w + j - 1],
            );
            let (best, kind) = if diagonal < up && diagonal < left {
                (diagonal, 0)
            } else if up < diagonal && up < left {
                (up, 1)
            } else {
                (left, 2)
            };
            total[i * w + j] = cost[(i - 1) * cols + j - 1] + best;
            step[i * w + j] = kind;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let (mut text, mut time) = (Vec::new(), Vec::new());
    while i > 0 || j > 0 {
        text.push(i.wrapping_sub(1));
        time.push(j.wrapping_sub(1));
        // Off the grid's edges the path can only run along them.
        let kind = if i == 0 {
            2
        } else if j == 0 {
            1
        } else {
            step[i * w + j]
        };
        match kind {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    text.reverse();
    time.reverse();
    (text, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_filter_reflects_at_the_edges() {
        let row = [5.0, 1.0, 9.0, 2.0, 7.0];
        // Padded: 9 1 [5 1 9 2 7] 2 9 with width 5.
        assert_eq!(median_filter(&row, 5), vec![5.0, 2.0, 5.0, 2.0, 7.0]);
        assert_eq!(median_filter(&[3.0, 1.0], 7), vec![3.0, 1.0]);
    }

    #[test]
    fn dtw_follows_the_cheap_diagonal_band() {
        // Token 0 cheap on frames 0-1, token 1 on frames 2-4.
        let cost = [0.0, 0.0, 9.0, 9.0, 9.0, 9.0, 9.0, 0.0, 0.0, 0.0];
        let (text, time) = dtw(&cost, 2, 5);
        assert_eq!(text, vec![0, 0, 1, 1, 1]);
        assert_eq!(time, vec![0, 1, 2, 3, 4]);
    }
}
