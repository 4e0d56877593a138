//! Parakeet over a whole recording: the audio cut into long chunks that
//! overlap, each chunk recognized whole (log-mel, FastConformer encoder,
//! greedy CTC or TDT decoding), the chunks' words joined at the middle of
//! each overlap, and the words grouped into sentence segments.
//!
//! Chunks bound memory for any length while keeping the full attention the
//! models were trained with inside each chunk; the overlap gives each word
//! near a seam the context of a whole chunk on one side or the other.

mod family;

pub use family::ParakeetFamily;

use std::time::Instant;

use asr_models::parakeet::{Parakeet, TimedWord};
use asr_models::Quantize;

use crate::model_source::{resolve_model, PARAKEET};
use crate::stages::audio::AudioBlocks;
use crate::stages::transcribe::whisper::compression_ratio;
use crate::stages::transcribe::TranscribeError;
use crate::transcript::{Progress, Segment, SegmentWord, Timings, Transcript, Word};

/// Samples per second of the models' input.
const SAMPLE_RATE: usize = 16_000;
/// Seconds of audio recognized at once (parakeet-mlx's default chunk).
pub const CHUNK_SECONDS: usize = 120;
/// Seconds shared by consecutive chunks.
pub const OVERLAP_SECONDS: usize = 15;
/// Samples per 10 ms frame, the unit of [`Segment::seek`].
const HOP: usize = 160;
/// A segment ends at a sentence's end, or before it would grow past this.
const MAX_SEGMENT_SECONDS: f64 = 30.0;

/// A loaded Parakeet model ready to transcribe any number of recordings.
pub struct ParakeetTranscriber {
    model: Parakeet,
}

impl ParakeetTranscriber {
    /// The model `spec` names (an MLX folder, a `.nemo` file, a parakeet-mlx
    /// folder or a Hub repo), converted once with `quantize.weights`, its
    /// quantized matrices multiplying activations as `quantize.activations`
    /// says.
    pub fn load_with(
        spec: &str,
        quantize: Quantize,
    ) -> Result<ParakeetTranscriber, TranscribeError> {
        let dir = resolve_model(spec, quantize.weights, PARAKEET)?;
        let model = Parakeet::load_with(&dir, quantize.activations)?;
        Ok(ParakeetTranscriber { model })
    }

    pub fn model(&self) -> &Parakeet {
        &self.model
    }

    /// Transcribes 16 kHz mono audio arriving in consecutive blocks, holding
    /// at most one chunk of it at a time.
    pub fn transcribe_blocks(
        &self,
        blocks: impl AudioBlocks,
        word_timestamps: bool,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        let started = Instant::now();
        let chunk = CHUNK_SECONDS * SAMPLE_RATE;
        let overlap = OVERLAP_SECONDS * SAMPLE_RATE;
        let mut timings = Timings::default();
        let mut words: Vec<(usize, TimedWord)> = Vec::new();
        // The chunk being filled, where it starts, and the time from which
        // its words are kept (the previous chunk kept those before).
        let mut buffer: Vec<f32> = Vec::with_capacity(chunk);
        let mut buffer_start = 0usize;
        let mut kept_from = f64::NEG_INFINITY;
        let mut seen = 0usize;
        let mut chunks = 0usize;
        let mut blocks = blocks.peekable();
        loop {
            if let Some(block) = blocks.next().transpose()? {
                seen += block.len();
                buffer.extend_from_slice(&block);
            }
            let done = blocks.peek().is_none();
            while buffer.len() >= chunk || (done && !buffer.is_empty()) {
                let last = done && buffer.len() <= chunk;
                let take = buffer.len().min(chunk);
                let offset = seconds(buffer_start);
                let seam = if last {
                    f64::INFINITY
                } else {
                    offset + seconds(take - overlap / 2)
                };
                let recognized = self.model.transcribe_samples(&buffer[..take])?;
                timings.mel += recognized.times.mel;
                timings.encoder += recognized.times.encoder;
                timings.decoder += recognized.times.decoder;
                timings.tokens += recognized.tokens;
                words.extend(
                    recognized
                        .words
                        .into_iter()
                        .map(|w| (buffer_start / HOP, w.shifted(offset)))
                        .filter(|(_, w)| w.start >= kept_from && w.start < seam),
                );
                kept_from = seam;
                chunks += 1;
                if last {
                    buffer.clear();
                } else {
                    buffer.drain(..take - overlap);
                    buffer_start += take - overlap;
                }
                progress(Progress {
                    done: seconds(buffer_start),
                    total: None,
                });
            }
            if done {
                break;
            }
        }
        let audio = seconds(seen);
        progress(Progress {
            done: audio,
            total: Some(audio),
        });
        timings.audio = audio;
        timings.transcribe = started.elapsed().as_secs_f64();
        timings.windows = chunks;
        let segments = segments(&words, word_timestamps);
        Ok(Transcript {
            text: segments.iter().map(|s| s.text.as_str()).collect(),
            segments,
            timings,
            ..Transcript::default()
        })
    }
}

fn seconds(samples: usize) -> f64 {
    samples as f64 / SAMPLE_RATE as f64
}

/// Words (each with the 10 ms frame its chunk starts at) grouped into
/// segments that end at a sentence's end (`.`, `?`, `!`) or before growing
/// past [`MAX_SEGMENT_SECONDS`]; the segments keep their words when
/// `word_timestamps` asks.
fn segments(words: &[(usize, TimedWord)], word_timestamps: bool) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, (_, word)) in words.iter().enumerate() {
        let next = words.get(i + 1).map(|(_, w)| w);
        let sentence_end = word.text.ends_with(['.', '?', '!']);
        let too_long = next.is_some_and(|n| n.end - words[start].1.start > MAX_SEGMENT_SECONDS);
        if sentence_end || too_long || next.is_none() {
            out.push(segment(out.len(), &words[start..=i], word_timestamps));
            start = i + 1;
        }
    }
    out
}

fn segment(id: usize, words: &[(usize, TimedWord)], word_timestamps: bool) -> Segment {
    let text: String = words.iter().map(|(_, w)| format!(" {}", w.text)).collect();
    let avg_logprob = words
        .iter()
        .map(|(_, w)| w.confidence.max(f32::MIN_POSITIVE).ln())
        .sum::<f32>()
        / words.len() as f32;
    let timed = || {
        words.iter().map(|(_, w)| {
            SegmentWord::from(Word {
                word: format!(" {}", w.text),
                start: w.start,
                end: w.end,
                probability: w.confidence,
            })
        })
    };
    Segment {
        id,
        seek: words[0].0,
        start: words[0].1.start,
        end: words[words.len() - 1].1.end,
        compression_ratio: compression_ratio(&text),
        text,
        tokens: words
            .iter()
            .flat_map(|(_, w)| w.tokens.iter().copied())
            .collect(),
        temperature: 0.0,
        avg_logprob,
        no_speech_prob: 0.0,
        words: if word_timestamps {
            timed().collect()
        } else {
            Vec::new()
        },
        speaker: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start: f64) -> (usize, TimedWord) {
        let word = TimedWord {
            text: text.into(),
            start,
            end: start + 0.5,
            confidence: 0.5,
            tokens: vec![1, 2],
        };
        (100, word)
    }

    #[test]
    fn segments_end_at_sentence_ends_or_before_thirty_seconds() {
        let mut words = vec![word("Hello", 0.0), word("there.", 1.0), word("Why", 2.0)];
        words.extend((0..40).map(|i| word("go", 3.0 + i as f64)));
        words.push(word("now?", 50.0));
        let segments = segments(&words, true);
        let spans: Vec<(f64, f64, usize)> = segments
            .iter()
            .map(|s| (s.start, s.end, s.words.len()))
            .collect();
        // "Why" at 2 s and the words ending by 31.5 s span 29.5 s; one more
        // would pass 30 s.
        assert_eq!(
            spans,
            vec![(0.0, 1.5, 2), (2.0, 31.5, 30), (32.0, 50.5, 12)]
        );
        assert_eq!(segments[0].text, " Hello there.");
        assert_eq!(segments[0].tokens, vec![1, 2, 1, 2]);
        assert_eq!(segments[2].id, 2);
        assert!((segments[0].avg_logprob - 0.5f32.ln()).abs() < 1e-6);
        assert!(super::segments(&words, false)
            .iter()
            .all(|s| s.words.is_empty()));
    }
}
