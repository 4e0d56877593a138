//! Qwen3-ASR's features: Whisper's log-mel (128 bands by default, the
//! dynamic range clamped against the clip's own maximum, no padding to 30 s),
//! computed on clips lengthened with zeros to at least half a second, as the
//! reference front end does. The encoder pads the frames to whole chunks.

use mlx::Array;

use crate::features::LogMel;
use crate::whisper::constants::HOP_LENGTH;

/// Clips shorter than this many samples (0.5 s at 16 kHz) are zero-padded to it.
pub const MIN_SAMPLES: usize = 8000;

#[derive(Debug, Clone)]
pub struct AudioFeatures {
    log_mel: LogMel,
}

impl AudioFeatures {
    pub fn new(n_mels: usize) -> mlx::Result<AudioFeatures> {
        Ok(AudioFeatures {
            log_mel: LogMel::new(n_mels)?,
        })
    }

    /// `samples` (16 kHz mono) → `[num_frames(len), n_mels]`.
    pub fn forward(&self, samples: &[f32]) -> mlx::Result<Array> {
        let audio = Array::from_slice(samples, &[samples.len() as i32])?;
        let short = MIN_SAMPLES.saturating_sub(samples.len()) as i32;
        let audio = if short > 0 {
            audio.pad(&[0], &[0], &[short], 0.0)?
        } else {
            audio
        };
        self.log_mel.forward(&audio)
    }

    /// Mel frames for `samples` samples.
    pub fn num_frames(samples: usize) -> usize {
        samples.max(MIN_SAMPLES) / HOP_LENGTH
    }
}
