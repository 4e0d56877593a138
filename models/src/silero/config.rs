//! Silero VAD's model schema: the `config.json` of an MLX Silero folder,
//! which the converter writes and [`super::Silero::load`] reads.

use crate::model_config::ModelConfig;
use serde::{Deserialize, Serialize};

/// Dimensions of Silero VAD v6 at 16 kHz.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SileroConfig {
    pub sample_rate: u32,
    /// Samples per decision (32 ms).
    pub frame_samples: i32,
    /// Samples of the previous frame put in front of each frame.
    pub context_samples: i32,
    /// STFT window (the fixed basis' kernel) and hop, in samples.
    pub filter_length: i32,
    pub hop_length: i32,
    /// Output channels of the four encoder convolutions (kernel 3).
    pub encoder_channels: Vec<i32>,
    pub encoder_strides: Vec<i32>,
    /// LSTM cell width.
    pub hidden: i32,
}

impl SileroConfig {
    /// Silero VAD v6's 16 kHz model.
    pub fn v6_16k() -> SileroConfig {
        SileroConfig {
            sample_rate: 16_000,
            frame_samples: 512,
            context_samples: 64,
            filter_length: 256,
            hop_length: 128,
            encoder_channels: vec![128, 64, 64, 128],
            encoder_strides: vec![1, 2, 2, 1],
            hidden: 128,
        }
    }

    /// Frequency bins of the STFT (its basis holds real and imaginary parts).
    pub fn bins(&self) -> i32 {
        self.filter_length / 2 + 1
    }

    /// Samples of one network input: context plus frame.
    pub fn input_samples(&self) -> i32 {
        self.context_samples + self.frame_samples
    }
}

impl ModelConfig for SileroConfig {
    const WHAT: &'static str = "a Silero VAD config";

    fn validate(&self) -> Result<(), String> {
        let positive = [
            self.frame_samples,
            self.context_samples,
            self.filter_length,
            self.hop_length,
            self.hidden,
        ];
        if positive.iter().any(|&d| d <= 0) || self.sample_rate == 0 {
            return Err(format!("a dimension is not positive: {self:?}"));
        }
        if self.encoder_channels.len() != self.encoder_strides.len()
            || self.encoder_channels.is_empty()
            || self.encoder_channels.last() != Some(&self.hidden)
        {
            return Err(format!(
                "encoder channels and strides do not match the LSTM width: {self:?}"
            ));
        }
        if self.context_samples >= self.frame_samples
            || self.input_samples() + self.context_samples < self.filter_length
        {
            return Err(format!(
                "frame, context and STFT window do not fit: {self:?}"
            ));
        }
        Ok(())
    }
}
