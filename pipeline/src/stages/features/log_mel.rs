//! Log-mel frames of a recording that arrives block by block, computed a
//! chunk at a time so that hours of audio never sit in memory at once.
//!
//! The frames are those openai-whisper's `transcribe` computes over the whole
//! recording followed by 30 s of silence: frame `i` is centred on sample
//! `i * HOP_LENGTH`, the start is reflect-padded, the audio is zero beyond
//! its end. The one difference is the clamp to `max - 8`: openai-whisper
//! takes the maximum over the whole file, here it is the running maximum
//! over the chunks computed so far, which is the same for any recording
//! that fits in one chunk (5 minutes).

use asr_models::features::{normalize, LogMel};
use asr_models::whisper::constants::{
    FRAMES_PER_SECOND, HOP_LENGTH, N_FFT, SAMPLE_RATE, WINDOW_FRAMES,
};
use mlx::Array;

use crate::stages::audio::AudioError;

/// The frame nearest to `seconds` (0 for negative times).
pub fn to_frames(seconds: f64) -> usize {
    (seconds * FRAMES_PER_SECOND).round().max(0.0) as usize
}
/// Frames computed per chunk: 5 minutes (the transient STFT buffers of a
/// chunk, ~5 KB per frame, dominate peak memory).
const CHUNK_FRAMES: usize = 30_000;
/// Samples of context on each side of a frame centre.
const HALF_WINDOW: usize = N_FFT / 2;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("MLX: {0}")]
    Mlx(#[from] mlx::Error),
}

/// A decoding window: `[1, WINDOW_FRAMES, n_mels]`, content then zeros.
pub struct MelWindow {
    pub mel: Array,
    /// Frames of real audio in the window (≤ [`WINDOW_FRAMES`]).
    pub content_frames: usize,
}

pub struct MelFrames<'a, I> {
    log_mel: &'a LogMel,
    blocks: I,
    /// Audio from sample `samples_start` on.
    samples: Vec<f32>,
    samples_start: usize,
    /// Total samples, once the last block has arrived.
    total_samples: Option<usize>,
    /// Normalized frames from frame `frames_start` on, `[n, n_mels]`.
    frames: Option<Array>,
    frames_start: usize,
    /// The first frame not computed yet.
    next_frame: usize,
    running_max: Option<f32>,
}

impl<'a, I> MelFrames<'a, I>
where
    I: Iterator<Item = Result<Vec<f32>, AudioError>>,
{
    /// `blocks`: consecutive 16 kHz mono samples.
    pub fn new(log_mel: &'a LogMel, blocks: I) -> Self {
        MelFrames {
            log_mel,
            blocks,
            samples: Vec::new(),
            samples_start: 0,
            total_samples: None,
            frames: None,
            frames_start: 0,
            next_frame: 0,
            running_max: None,
        }
    }

    /// Frames of real audio (`samples / HOP_LENGTH`), once the end is known.
    pub fn content_frames(&self) -> Option<usize> {
        self.total_samples.map(|n| n / HOP_LENGTH)
    }

    /// Seconds of audio read so far.
    pub fn seconds_read(&self) -> f64 {
        (self.samples_start + self.samples.len()) as f64 / SAMPLE_RATE as f64
    }

    /// The first [`WINDOW_FRAMES`] frames as they are, silence padding
    /// included (what openai-whisper detects the language on).
    pub fn first_frames(&mut self) -> Result<Array, FrameError> {
        self.ensure(WINDOW_FRAMES)?;
        let frames = self.frames.as_ref().expect("ensure computes frames");
        Ok(frames
            .slice_axis(0, 0, WINDOW_FRAMES as i32)
            .and_then(|f| f.expand_dims(&[0]))?)
    }

    /// The window starting at frame `seek`: its content frames, zero-padded
    /// to a full window; `None` once `seek` is past the end of the audio.
    /// Frames before `seek` are dropped: seeks must not go backwards.
    pub fn window(&mut self, seek: usize) -> Result<Option<MelWindow>, FrameError> {
        self.ensure(seek + WINDOW_FRAMES)?;
        let content = match self.content_frames() {
            Some(total) if seek >= total => return Ok(None),
            Some(total) => WINDOW_FRAMES.min(total - seek),
            None => WINDOW_FRAMES,
        };
        let frames = self.frames.as_ref().expect("ensure computes frames");
        let from = (seek - self.frames_start) as i32;
        let segment = frames.slice_axis(0, from, from + content as i32)?;
        let mel = segment
            .pad(&[0], &[0], &[(WINDOW_FRAMES - content) as i32], 0.0)?
            .expand_dims(&[0])?;
        let kept = frames.slice_axis(0, from, frames.dim(0)?)?;
        self.frames = Some(kept);
        self.frames_start = seek;
        Ok(Some(MelWindow {
            mel,
            content_frames: content,
        }))
    }

    /// Computes chunks until frame `end` exists or every frame does.
    fn ensure(&mut self, end: usize) -> Result<(), FrameError> {
        while self.next_frame < end && !self.all_computed() {
            self.compute_chunk()?;
        }
        Ok(())
    }

    fn all_computed(&self) -> bool {
        self.total_samples
            .is_some_and(|n| self.next_frame >= total_frames(n))
    }

    /// Computes the next chunk of frames; the last one runs to the end of
    /// the silence padding.
    fn compute_chunk(&mut self) -> Result<(), FrameError> {
        let first = self.next_frame;
        let mut last = first + CHUNK_FRAMES;
        // The last frame of the chunk reaches HALF_WINDOW samples past its centre.
        let needed = (last - 1) * HOP_LENGTH + HALF_WINDOW;
        self.read_until(needed)?;
        if let Some(n) = self.total_samples.filter(|&n| n < needed) {
            last = total_frames(n);
        }
        let context = self.context(first, last);
        let context = Array::from_slice(&context, &[context.len() as i32])?;
        let log = self.log_mel.log10_frames(&context, last - first)?;
        let chunk_max = log.max(&[], false)?.item::<f32>()?;
        let max = self.running_max.map_or(chunk_max, |m| m.max(chunk_max));
        self.running_max = Some(max);
        let chunk = normalize(&log, &Array::from_slice(&[max], &[])?)?;
        self.frames = Some(match self.frames.take() {
            Some(frames) => mlx::concatenate(&[&frames, &chunk], 0)?,
            None => chunk,
        });
        self.next_frame = last;
        // Later frames start HALF_WINDOW samples before their centre.
        let keep_from = (last * HOP_LENGTH).saturating_sub(HALF_WINDOW);
        if keep_from > self.samples_start {
            let drop = (keep_from - self.samples_start).min(self.samples.len());
            self.samples.drain(..drop);
            self.samples_start += drop;
        }
        Ok(())
    }

    /// Reads blocks until sample `needed` is buffered or the audio ends.
    fn read_until(&mut self, needed: usize) -> Result<(), AudioError> {
        while self.total_samples.is_none() && self.samples_start + self.samples.len() < needed {
            match self.blocks.next() {
                Some(block) => self.samples.extend_from_slice(&block?),
                None => self.total_samples = Some(self.samples_start + self.samples.len()),
            }
        }
        Ok(())
    }

    /// Samples `first * HOP - HALF_WINDOW .. (last - 1) * HOP + HALF_WINDOW`
    /// of the padded signal: mirrored before the start, zero past the end.
    fn context(&self, first: usize, last: usize) -> Vec<f32> {
        let from = (first * HOP_LENGTH) as i64 - HALF_WINDOW as i64;
        let to = ((last - 1) * HOP_LENGTH + HALF_WINDOW) as i64;
        (from..to)
            .map(|p| {
                let i = p.unsigned_abs() as usize;
                i.checked_sub(self.samples_start)
                    .and_then(|j| self.samples.get(j))
                    .copied()
                    .unwrap_or(0.0)
            })
            .collect()
    }
}

/// Frames of `n` samples followed by one window of silence.
fn total_frames(n: usize) -> usize {
    n / HOP_LENGTH + WINDOW_FRAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording longer than one chunk, loudest at the start (so the
    /// running maximum is the global one), as 1-second blocks.
    fn recording(seconds: usize) -> Vec<f32> {
        let mut state = 0x2545F4914F6CDD1Du64;
        (0..seconds * SAMPLE_RATE as usize)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                let tone = (i as f32 * 0.07).sin();
                let loudness = if i < SAMPLE_RATE as usize { 1.0 } else { 0.2 };
                loudness * (0.5 * tone + 0.1 * noise)
            })
            .collect()
    }

    fn max_abs_diff(a: &Array, b: &Array) -> f32 {
        a.subtract(b)
            .unwrap()
            .abs()
            .unwrap()
            .max(&[], false)
            .unwrap()
            .item::<f32>()
            .unwrap()
    }

    #[test]
    fn chunked_frames_equal_the_whole_recording_at_every_seek() {
        let log_mel = LogMel::new(80).unwrap();
        let samples = recording(CHUNK_FRAMES * HOP_LENGTH / SAMPLE_RATE as usize + 95);
        let mut padded = samples.clone();
        padded.resize(samples.len() + WINDOW_FRAMES * HOP_LENGTH, 0.0);
        let whole = log_mel
            .forward(&Array::from_slice(&padded, &[padded.len() as i32]).unwrap())
            .unwrap();
        let blocks = samples.chunks(SAMPLE_RATE as usize).map(|b| Ok(b.to_vec()));
        let mut frames = MelFrames::new(&log_mel, blocks);
        let first = frames.first_frames().unwrap();
        let expected = whole.slice_axis(0, 0, WINDOW_FRAMES as i32).unwrap();
        assert!(max_abs_diff(&first.squeeze(&[0]).unwrap(), &expected) < 1e-5);
        let content = samples.len() / HOP_LENGTH;
        // Inside the first chunk, across the chunk boundary, the ragged end.
        for seek in [
            0,
            1234,
            CHUNK_FRAMES - 1500,
            CHUNK_FRAMES + 7,
            content - 1000,
        ] {
            let window = frames.window(seek).unwrap().unwrap();
            let n = window.content_frames;
            assert_eq!(n, WINDOW_FRAMES.min(content - seek), "seek {seek}");
            let got = window.mel.squeeze(&[0]).unwrap();
            let want = whole.slice_axis(0, seek as i32, (seek + n) as i32).unwrap();
            let diff = max_abs_diff(&got.slice_axis(0, 0, n as i32).unwrap(), &want);
            assert!(diff < 1e-5, "seek {seek}: {diff}");
            let tail = got.slice_axis(0, n as i32, WINDOW_FRAMES as i32).unwrap();
            assert_eq!(
                tail.abs()
                    .unwrap()
                    .sum(&[], false)
                    .unwrap()
                    .item::<f32>()
                    .unwrap(),
                0.0
            );
        }
        assert!(frames.window(content).unwrap().is_none());
        assert_eq!(frames.content_frames(), Some(content));
    }
}
