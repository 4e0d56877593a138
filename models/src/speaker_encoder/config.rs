//! The speaker encoder's schema: Resemblyzer's hyperparameters
//! (`resemblyzer/hparams.py` and `embed_utterance`'s defaults), stored as the
//! `config.json` of its MLX folder.

use crate::model_config::ModelConfig;
use serde::{Deserialize, Serialize};

/// What `model_type` says in the `config.json` of a converted Resemblyzer.
pub const MODEL_TYPE: &str = "resemblyzer";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeakerEncoderConfig {
    pub model_type: String,
    /// Hz of the audio the encoder takes.
    pub sample_rate: usize,
    /// STFT size and window length (25 ms).
    pub n_fft: usize,
    /// Samples between mel frames (10 ms).
    pub hop_length: usize,
    pub n_mels: usize,
    /// Mel frames in one partial utterance (1.6 s).
    pub partial_frames: usize,
    /// Partial utterances started per second of audio.
    pub partials_per_second: f64,
    /// Fraction of the last partial that must be audio for it to be kept
    /// (zero-padded) rather than dropped, unless it is the only one.
    pub min_coverage: f64,
    pub hidden_size: i32,
    pub num_layers: i32,
    pub embedding_size: i32,
}

impl SpeakerEncoderConfig {
    /// Resemblyzer 0.1.4's `pretrained.pt` and `embed_utterance` defaults.
    pub fn resemblyzer() -> SpeakerEncoderConfig {
        SpeakerEncoderConfig {
            model_type: MODEL_TYPE.into(),
            sample_rate: 16000,
            n_fft: 400,
            hop_length: 160,
            n_mels: 40,
            partial_frames: 160,
            partials_per_second: 1.3,
            min_coverage: 0.75,
            hidden_size: 256,
            num_layers: 3,
            embedding_size: 256,
        }
    }

    /// Mel frames between the starts of two partials: Resemblyzer rounds
    /// the step in samples to whole frames.
    pub fn partial_step(&self) -> usize {
        (self.sample_rate as f64 / self.partials_per_second / self.hop_length as f64).round()
            as usize
    }
}

impl ModelConfig for SpeakerEncoderConfig {
    const WHAT: &'static str = "a speaker-encoder config";

    fn validate(&self) -> Result<(), String> {
        if self.model_type != MODEL_TYPE {
            return Err(format!(
                "model_type is {:?}, expected {MODEL_TYPE:?}",
                self.model_type
            ));
        }
        let sizes = [
            self.sample_rate,
            self.n_fft,
            self.hop_length,
            self.n_mels,
            self.partial_frames,
        ];
        if sizes.contains(&0) || self.hidden_size <= 0 || self.num_layers <= 0 {
            return Err(format!("a size is zero: {self:?}"));
        }
        if self.embedding_size != self.hidden_size {
            // The projection is square in Resemblyzer; other shapes would
            // load but are not a model this code was checked against.
            return Err(format!(
                "embedding_size {} differs from hidden_size {}",
                self.embedding_size, self.hidden_size
            ));
        }
        if !(self.min_coverage > 0.0 && self.min_coverage <= 1.0) {
            return Err(format!(
                "min_coverage {} is not in (0, 1]",
                self.min_coverage
            ));
        }
        let step = self.partial_step();
        if !self.partials_per_second.is_finite() || step == 0 || step > self.partial_frames {
            return Err(format!(
                "partials_per_second {} gives a step of {step} frames, outside 1..={}",
                self.partials_per_second, self.partial_frames
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resemblyzer_steps_77_frames_and_round_trips_through_json() {
        let config = SpeakerEncoderConfig::resemblyzer();
        assert_eq!(config.partial_step(), 77);
        config.validate().unwrap();
        let back: SpeakerEncoderConfig = serde_json::from_str(&config.to_json()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn a_rate_below_one_partial_per_partial_length_is_refused() {
        let config = SpeakerEncoderConfig {
            partials_per_second: 0.5,
            ..SpeakerEncoderConfig::resemblyzer()
        };
        let err = config.validate().unwrap_err();
        assert!(err.contains("step of 200 frames"), "{err}");
    }
}
