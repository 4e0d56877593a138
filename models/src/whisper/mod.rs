//! Whisper (Radford et al., 2022) on MLX arrays, laid out like the paper:
//! an audio encoder over log-mel frames and a text decoder that attends to it.

mod attention;
mod config;
pub mod constants;
mod decoder;
mod decoding;
mod encoder;
mod timing;
mod token_rules;
mod tokenizer;

use std::path::Path;

pub use attention::{CrossAttention, CrossKv, KvCache, ResidualAttentionBlock, SelfAttention};
pub use config::{WhisperConfig, WhisperDims};
pub use decoder::{DecoderState, TextDecoder};
pub use decoding::{
    decode_window, decode_windows_greedy, detect_language, greedy_without_timestamps, Search,
    StepTimes, WindowPrompt, WindowResult,
};
pub use encoder::{sinusoids, AudioEncoder};
pub use timing::{dtw, find_alignment, median_filter, WordTiming};
pub use token_rules::{Suppression, TokenRules};
pub use tokenizer::{SpecialTokens, WhisperTokenizer};

use crate::quantization::Activations;
use crate::weights::{WeightError, Weights};

pub use crate::model_config::LoadError;

/// A loaded model: configuration, encoder and decoder.
#[derive(Debug, Clone)]
pub struct Whisper {
    pub config: WhisperConfig,
    pub encoder: AudioEncoder,
    pub decoder: TextDecoder,
    /// Decoder (layer, head) pairs whose cross-attention follows the speech
    /// in time: the checkpoint's `alignment_heads`, else the upper half of
    /// the layers (openai-whisper's default).
    pub alignment_heads: Vec<(usize, usize)>,
}

impl Whisper {
    /// Loads an MLX Whisper folder (`config.json` + `weights.safetensors`), as
    /// `pipeline convert` writes it, and evaluates every weight once.
    pub fn load(dir: &Path) -> Result<Whisper, LoadError> {
        Whisper::load_with(dir, Activations::F32)
    }

    /// [`Whisper::load`], the quantized matrices (if any) multiplying
    /// activations as `activations` says.
    pub fn load_with(dir: &Path, activations: Activations) -> Result<Whisper, LoadError> {
        let config = WhisperConfig::load(&dir.join("config.json")).map_err(LoadError::Config)?;
        let path = dir.join("weights.safetensors");
        let werr = |error| LoadError::weights(&path, error);
        let weights = Weights::load(&path, config.quantization)
            .map_err(werr)?
            .with_activations(activations);
        let encoder = AudioEncoder::load(&weights, &config.dims).map_err(werr)?;
        let decoder = TextDecoder::load(&weights, &config.dims).map_err(werr)?;
        let all: Vec<&mlx::Array> = weights.arrays().map(|(_, a)| a).collect();
        mlx::eval(&all).map_err(|e| werr(WeightError::Mlx(e)))?;
        for a in all.iter().filter(|a| a.nbytes() >= HUGE_PAGE_WORTHY) {
            a.prefer_huge_pages()
                .map_err(|e| werr(WeightError::Mlx(e)))?;
        }
        let alignment_heads = alignment_heads(&weights, &config.dims).map_err(werr)?;
        Ok(Whisper {
            config,
            encoder,
            decoder,
            alignment_heads,
        })
    }
}

/// Matrices from this size up (the token embedding, read whole for every
/// token's logits) are asked for huge pages after loading.
const HUGE_PAGE_WORTHY: usize = 4 << 20;

/// The stored `alignment_heads` (`[n, 2]` integers), or every head of the
/// upper half of the decoder layers.
fn alignment_heads(w: &Weights, c: &WhisperDims) -> Result<Vec<(usize, usize)>, WeightError> {
    if !w.contains("alignment_heads") {
        let (layers, heads) = (c.n_text_layer as usize, c.n_text_head as usize);
        return Ok((layers / 2..layers)
            .flat_map(|l| (0..heads).map(move |h| (l, h)))
            .collect());
    }
    let pairs = w
        .get("alignment_heads")?
        .astype(mlx::Dtype::I64)
        .and_then(|a| a.to_vec::<i64>())
        .map_err(WeightError::Mlx)?;
    Ok(pairs
        .chunks_exact(2)
        .map(|p| (p[0] as usize, p[1] as usize))
        .collect())
}
