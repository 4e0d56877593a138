//! wav2vec 2.0 with a CTC head (Baevski et al., 2020, "wav2vec 2.0: A
//! Framework for Self-Supervised Learning of Speech Representations"), as
//! Hugging Face's `Wav2Vec2ForCTC` computes it, on MLX arrays:
//! samples → convolutional feature encoder → layer norm + projection →
//! positional convolution + transformer → linear CTC head.
//!
//! Hugging Face normalizes each utterance to zero mean and unit variance in
//! its *feature extractor* (`Wav2Vec2FeatureExtractor`, `do_normalize`), not
//! in the model; [`Wav2Vec2::forward`] likewise takes samples as given, and
//! callers of checkpoints trained that way (all published CTC fine-tunes)
//! apply [`normalize_waveform`] first.

mod config;
mod encoder;
mod feature_encoder;

use std::path::Path;

use mlx::Array;

pub use config::{FeatExtractNorm, Wav2Vec2Config, MODEL_TYPE};
pub use encoder::{Encoder, EncoderLayer, FeedForward, PositionalConvEmbedding, SelfAttention};
pub use feature_encoder::{ConvLayer, ConvNorm, FeatureEncoder, FeatureProjection};

use crate::model_config::{LoadError, ModelFolder};
use crate::nn::Linear;
use crate::weights::WeightError;

/// `Wav2Vec2FeatureExtractor`'s variance floor.
const NORMALIZE_EPS: f64 = 1e-7;

/// Each row of `samples` (`[B, S]`) less its mean, over
/// `sqrt(variance + 1e-7)`: what `Wav2Vec2FeatureExtractor` does with
/// `do_normalize=True` to one unpadded utterance.
pub fn normalize_waveform(samples: &Array) -> mlx::Result<Array> {
    let mean = samples.mean(&[-1], true)?;
    let var = samples.var(&[-1], true)?;
    samples
        .subtract(&mean)?
        .multiply(&var.add_scalar(NORMALIZE_EPS)?.rsqrt()?)
}

#[derive(Debug, Clone)]
pub struct Wav2Vec2 {
    pub config: Wav2Vec2Config,
    pub feature_extractor: FeatureEncoder,
    pub feature_projection: FeatureProjection,
    pub encoder: Encoder,
    /// Hidden states → CTC logits over the vocabulary (index 0 is usually
    /// the pad token, which CTC uses as blank).
    pub lm_head: Linear,
}

impl Wav2Vec2 {
    /// Loads a converted folder (`config.json` + `weights.safetensors`, as
    /// `asr_converters::wav2vec2` writes) and evaluates every weight once.
    pub fn load(dir: &Path) -> Result<Wav2Vec2, LoadError> {
        let ModelFolder {
            config,
            weights: w,
            weights_path,
        } = ModelFolder::<Wav2Vec2Config>::open(dir)?;
        let werr = |error| LoadError::weights(&weights_path, error);
        let model = Wav2Vec2 {
            feature_extractor: FeatureEncoder::load(&w, &config).map_err(werr)?,
            feature_projection: FeatureProjection::load(&w, &config).map_err(werr)?,
            encoder: Encoder::load(&w, &config).map_err(werr)?,
            lm_head: Linear::load(&w, "lm_head", config.hidden_size, config.vocab_size, true)
                .map_err(werr)?,
            config,
        };
        let arrays: Vec<&Array> = w.arrays().map(|(_, a)| a).collect();
        mlx::eval(&arrays).map_err(|e| werr(WeightError::Mlx(e)))?;
        Ok(model)
    }

    /// CTC logits `[B, frames, vocab]` for samples `[B, S]` at 16 kHz (see
    /// [`normalize_waveform`]); one frame per
    /// [`Wav2Vec2Config::samples_per_frame`] samples. Every row is one whole
    /// utterance: there is no padding mask, so rows padded to a common
    /// length would attend to their padding.
    pub fn forward(&self, samples: &Array) -> mlx::Result<Array> {
        let latents = self.feature_extractor.forward(samples)?;
        let hidden = self.feature_projection.forward(&latents)?;
        self.lm_head.forward(&self.encoder.forward(&hidden)?)
    }
}
