//! Whisper (Radford et al., 2022) on MLX arrays, laid out like the paper:
//! an audio encoder over log-mel frames and a text decoder that attends to it.

mod attention;
mod config;
mod decoder;
mod decoding;
mod encoder;
mod tokenizer;

use std::path::Path;

pub use attention::{KvCache, MultiHeadAttention, ResidualAttentionBlock};
pub use config::WhisperConfig;
pub use decoder::{DecoderState, TextDecoder};
pub use decoding::{
    decode_window, detect_language, greedy_without_timestamps, Sampling, Suppression, TokenRules,
    WindowResult, TIME_PRECISION,
};
pub use encoder::{sinusoids, AudioEncoder};
pub use tokenizer::{SpecialTokens, WhisperTokenizer};

use crate::weights::{WeightError, Weights};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {error}")]
    Weights { path: String, error: WeightError },
}

/// A loaded model: configuration, encoder and decoder.
#[derive(Debug, Clone)]
pub struct Whisper {
    pub config: WhisperConfig,
    pub encoder: AudioEncoder,
    pub decoder: TextDecoder,
}

impl Whisper {
    /// Loads an MLX Whisper folder (`config.json` + `weights.safetensors`), as
    /// `pipeline convert` writes it, and evaluates every weight once.
    pub fn load(dir: &Path) -> Result<Whisper, LoadError> {
        let config = WhisperConfig::load(&dir.join("config.json")).map_err(LoadError::Config)?;
        let path = dir.join("weights.safetensors");
        let werr = |error| LoadError::Weights {
            path: path.display().to_string(),
            error,
        };
        let weights = Weights::load(&path, config.quantization).map_err(werr)?;
        let encoder = AudioEncoder::load(&weights, &config).map_err(werr)?;
        let decoder = TextDecoder::load(&weights, &config).map_err(werr)?;
        let all: Vec<&mlx::Array> = weights.arrays().map(|(_, a)| a).collect();
        mlx::eval(&all).map_err(|e| werr(WeightError::Mlx(e)))?;
        Ok(Whisper {
            config,
            encoder,
            decoder,
        })
    }
}
