//! faster-whisper 1.2.1's `get_speech_timestamps` (after silero-vad's),
//! frame by frame: the same regions as the offline function, each handed out
//! as soon as no later frame can change it.
//!
//! Positions are in samples, frame `i` at `512 · i`; like the original,
//! 0 means "unset" for `temp_end`, `prev_end` and `next_start` (none of
//! them can be set at the first frame), lengths are compared as floats and
//! probabilities with the thresholds in f32.

use super::{SileroSettings, FRAME};
use crate::stages::vad::{RegionRules, SpeechRegion, PER_MS, RATE};

/// Pauses at least this long (in samples, 98 ms) are where an over-long
/// region is split.
const MIN_SILENCE_AT_MAX_SPEECH: f64 = (RATE * 98 / 1000) as f64;

/// A region whose end depends on the next one: padded start, raw end.
#[derive(Copy, Clone, Debug)]
struct Pending {
    start: usize,
    end: usize,
}

/// Silero's region rules (see [`SileroSettings`]).
pub struct SpeechTimestamps {
    threshold: f32,
    neg_threshold: f32,
    min_speech: f64,
    max_speech: f64,
    min_silence: f64,
    pad: usize,
    /// Frames seen, and their samples (the last frame may be short).
    frames: usize,
    samples: usize,
    /// Start of the speech being detected (`triggered` in the original).
    start: Option<usize>,
    /// Where the current silence began.
    temp_end: usize,
    /// End of the last pause of at least 98 ms: where to split.
    prev_end: usize,
    /// Where speech resumed after that pause: the next piece's start.
    next_start: usize,
    pending: Option<Pending>,
}

impl SpeechTimestamps {
    pub fn new(settings: &SileroSettings) -> Self {
        let pad = settings.speech_pad_ms as usize * PER_MS;
        SpeechTimestamps {
            threshold: settings.threshold as f32,
            neg_threshold: settings.neg_threshold as f32,
            min_speech: (settings.min_speech_ms as usize * PER_MS) as f64,
            max_speech: RATE as f64 * settings.max_speech_s - FRAME as f64 - 2.0 * pad as f64,
            min_silence: (settings.min_silence_ms as usize * PER_MS) as f64,
            pad,
            frames: 0,
            samples: 0,
            start: None,
            temp_end: 0,
            prev_end: 0,
            next_start: 0,
            pending: None,
        }
    }

    /// The loop body of `get_speech_timestamps` for the frame at `pos`.
    fn step(&mut self, pos: usize, p: f32, out: &mut Vec<SpeechRegion>) {
        let speech = p >= self.threshold;
        if speech && self.temp_end != 0 {
            self.temp_end = 0;
            if self.next_start < self.prev_end {
                self.next_start = pos;
            }
        }
        let Some(start) = self.start else {
            if speech {
                self.start = Some(pos);
            }
            return;
        };
        if (pos - start) as f64 > self.max_speech {
            if self.prev_end != 0 {
                // Split at the last long pause; speech that resumed after it
                // (and has not paused since) goes on as the next piece.
                self.speech(start, self.prev_end, out);
                self.start = (self.next_start >= self.prev_end).then_some(self.next_start);
                self.reset();
            } else {
                self.speech(start, pos, out);
                self.start = None;
                self.reset();
                return;
            }
        }
        let Some(start) = self.start else { return };
        if p < self.neg_threshold {
            if self.temp_end == 0 {
                self.temp_end = pos;
            }
            let silence = (pos - self.temp_end) as f64;
            if silence > MIN_SILENCE_AT_MAX_SPEECH {
                self.prev_end = self.temp_end;
            }
            if silence >= self.min_silence {
                let end = self.temp_end;
                if (end - start) as f64 > self.min_speech {
                    self.speech(start, end, out);
                }
                self.start = None;
                self.reset();
            }
        }
    }

    fn reset(&mut self) {
        self.prev_end = 0;
        self.next_start = 0;
        self.temp_end = 0;
    }

    /// A region `[start, end)` before padding: the one before it gets its
    /// end, it gets its padded start.
    fn speech(&mut self, start: usize, end: usize, out: &mut Vec<SpeechRegion>) {
        let padded_start = match self.pending.take() {
            Some(prev) => {
                let silence = start - prev.end;
                let (prev_end, start) = if silence < 2 * self.pad {
                    (prev.end + silence / 2, start - silence / 2)
                } else {
                    (prev.end + self.pad, start.saturating_sub(self.pad))
                };
                out.push(SpeechRegion::new(prev.start, prev_end));
                start
            }
            None => start.saturating_sub(self.pad),
        };
        self.pending = Some(Pending {
            start: padded_start,
            end,
        });
    }

    /// Hands out the pending region once no region can start within twice
    /// the padding of its end (it then gets the full padding).
    fn settle(&mut self, out: &mut Vec<SpeechRegion>) {
        let Some(prev) = self.pending else { return };
        let earliest = self.start.unwrap_or(self.frames * FRAME);
        let end = prev.end + self.pad;
        if earliest >= prev.end + 2 * self.pad && end <= self.samples {
            out.push(SpeechRegion::new(prev.start, end));
            self.pending = None;
        }
    }
}

impl RegionRules for SpeechTimestamps {
    fn frame(&mut self, frame: &[f32], probability: f32, out: &mut Vec<SpeechRegion>) {
        let pos = self.frames * FRAME;
        self.frames += 1;
        self.samples += frame.len();
        self.step(pos, probability, out);
        self.settle(out);
    }

    fn finish(&mut self, samples: usize, out: &mut Vec<SpeechRegion>) {
        if let Some(start) = self.start.take() {
            if samples.saturating_sub(start) as f64 > self.min_speech {
                self.speech(start, samples, out);
            }
        }
        if let Some(prev) = self.pending.take() {
            out.push(SpeechRegion::new(
                prev.start,
                (prev.end + self.pad).min(samples),
            ));
        }
    }

    fn retain_from(&self) -> usize {
        let next = self.start.unwrap_or(self.frames * FRAME);
        let from = next.saturating_sub(self.pad);
        self.pending.map_or(from, |p| from.min(p.start))
    }

    fn pad(&self) -> usize {
        self.pad
    }
}
