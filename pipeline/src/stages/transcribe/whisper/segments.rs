//! A decoded window cut into segments at its timestamp tokens, and the
//! compression ratio that flags repetitive text.

use std::io::Write as _;

use asr_models::whisper::constants::{
    FRAMES_PER_TIMESTAMP, HOP_LENGTH, SAMPLE_RATE, TIME_PRECISION,
};

use crate::stages::features::MelWindow;

/// gzip-style compression ratio of `text` (bytes over zlib-compressed bytes,
/// as openai-whisper measures repetitiveness).
pub fn compression_ratio(text: &str) -> f32 {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map_or(0.0, |z| text.len() as f32 / z.len() as f32)
}

/// A timed stretch of a window's tokens; times in seconds from the window start.
pub(super) struct Piece<'a> {
    pub(super) start: f64,
    pub(super) end: f64,
    pub(super) tokens: &'a [u32],
}

pub(super) struct Cut<'a> {
    pub(super) pieces: Vec<Piece<'a>>,
    /// The window ended with a lone timestamp: nothing was cut off.
    pub(super) single_timestamp_ending: bool,
    /// Frames to move the window by.
    pub(super) advance: usize,
}

/// Splits a window's tokens at consecutive timestamp pairs. A window that
/// ends inside a segment is re-decoded from that segment's start; one that
/// ends with a lone timestamp (no speech after it) or has no pairs is used
/// whole.
pub(super) fn cut_segments<'a>(
    tokens: &'a [u32],
    timestamp_begin: u32,
    window: &MelWindow,
) -> Cut<'a> {
    let is_timestamp = |t: u32| t >= timestamp_begin;
    let time = |t: u32| f64::from(t.saturating_sub(timestamp_begin)) * TIME_PRECISION;
    let n = tokens.len();
    let single_timestamp_ending =
        n >= 2 && !is_timestamp(tokens[n - 2]) && is_timestamp(tokens[n - 1]);
    let mut boundaries: Vec<usize> = (1..n)
        .filter(|&i| is_timestamp(tokens[i - 1]) && is_timestamp(tokens[i]))
        .collect();
    if boundaries.is_empty() {
        let duration = match tokens.iter().rev().find(|&&t| is_timestamp(t)) {
            Some(&last) if last != timestamp_begin => time(last),
            _ => window.content_frames as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64,
        };
        let whole = Piece {
            start: 0.0,
            end: duration,
            tokens,
        };
        return Cut {
            pieces: vec![whole],
            single_timestamp_ending,
            advance: window.content_frames,
        };
    }
    if single_timestamp_ending {
        boundaries.push(n);
    }
    let mut pieces = Vec::new();
    let mut from = 0;
    for &to in &boundaries {
        let slice = &tokens[from..to];
        pieces.push(Piece {
            start: time(slice[0]),
            end: time(slice[slice.len() - 1]),
            tokens: slice,
        });
        from = to;
    }
    let advance = if single_timestamp_ending {
        window.content_frames
    } else {
        (tokens[from - 1].saturating_sub(timestamp_begin)) as usize * FRAMES_PER_TIMESTAMP
    };
    Cut {
        pieces,
        single_timestamp_ending,
        advance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx::Array;

    const TB: u32 = 100;

    fn window(content_frames: usize) -> MelWindow {
        MelWindow {
            mel: Array::from_slice(&[0f32], &[1]).unwrap(),
            content_frames,
        }
    }

    fn spans(cut: &Cut) -> Vec<(f64, f64, usize)> {
        cut.pieces
            .iter()
            .map(|p| (p.start, p.end, p.tokens.len()))
            .collect()
    }

    #[test]
    fn complete_segments_are_cut_at_timestamp_pairs_and_the_rest_redecoded() {
        // <0.00> a b <1.00><1.00> c <2.40><2.40> d  (unfinished)
        let tokens = [TB, 1, 2, TB + 50, TB + 50, 3, TB + 120, TB + 120, 4];
        let cut = cut_segments(&tokens, TB, &window(3000));
        assert_eq!(spans(&cut), vec![(0.0, 1.0, 4), (1.0, 2.4, 3)]);
        assert_eq!(cut.advance, 240);
    }

    #[test]
    fn a_lone_final_timestamp_consumes_the_window() {
        let tokens = [TB, 1, TB + 50, TB + 60, 2, TB + 90];
        let cut = cut_segments(&tokens, TB, &window(2000));
        assert_eq!(spans(&cut), vec![(0.0, 1.0, 3), (1.2, 1.8, 3)]);
        assert_eq!(cut.advance, 2000);
    }

    #[test]
    fn without_pairs_the_last_timestamp_or_the_window_gives_the_end() {
        let cut = cut_segments(&[TB, 1, 2, TB + 75], TB, &window(3000));
        assert_eq!(spans(&cut), vec![(0.0, 1.5, 4)]);
        assert_eq!(cut.advance, 3000);
        let cut = cut_segments(&[1, 2], TB, &window(550));
        assert_eq!(spans(&cut), vec![(0.0, 5.5, 2)]);
    }

    #[test]
    fn compression_ratio_matches_zlib_on_known_texts() {
        // Lengths of Python's zlib.compress(text) (level 6): 5 → 13 bytes;
        // "ab" * 100 → 13 bytes.
        assert!((compression_ratio("hello") - 5.0 / 13.0).abs() < 1e-6);
        assert!((compression_ratio(&"ab".repeat(100)) - 200.0 / 13.0).abs() < 1e-4);
    }
}
