//! NVIDIA's Parakeet (FastConformer encoder with CTC or TDT heads) on MLX.

pub mod config;
pub mod ctc;
pub mod encoder;
pub mod features;
mod model;
pub mod tokenizer;
pub mod transducer;

pub use config::{EncoderConfig, Head, ParakeetConfig, CTC_TARGET, HYBRID_TARGET, RNNT_TARGET};
pub use ctc::CtcHead;
pub use encoder::Encoder;
pub use features::{FeatureWindow, Normalization, ParakeetFeatures, PreprocessConfig};
pub use model::{Parakeet, PhaseTimes, Recognized, TimedWord};
pub use tokenizer::{ParakeetTokenizer, Word};
pub use transducer::{JointNetwork, PredictionNetwork, PredictionState, Transducer};

/// Why a decoding head did not load from a checked config and its weights.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightError),
}

impl HeadError {
    /// As a folder's load error, weights errors naming `weights_path`.
    pub fn in_folder(self, weights_path: &std::path::Path) -> crate::LoadError {
        match self {
            HeadError::Config(message) => crate::LoadError::Config(message),
            HeadError::Weights(error) => crate::LoadError::weights(weights_path, error),
        }
    }
}

/// One token of a greedy decode, placed on the encoder's frames.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedToken {
    pub id: u32,
    /// The encoder frame at which the token was emitted.
    pub start_frame: usize,
    /// The frames it spans: TDT's predicted duration (possibly 0), 1 for
    /// RNN-T, and for CTC the frames up to the next token's (the last
    /// token's up to its last non-blank frame).
    pub frames: usize,
    /// `1 - H/ln(V+1)` with `H` the entropy of the token distribution over
    /// the vocabulary and blank (for CTC, averaged over the token's frames),
    /// as parakeet-mlx reports it.
    pub confidence: f32,
}

/// The frames of `encoded` `[1, T, d]` as `[T, d]`; decoding is per utterance.
fn single_utterance(encoded: &mlx::Array) -> mlx::Result<mlx::Array> {
    let shape = encoded.shape();
    match shape.as_slice() {
        [1, frames, dims] => encoded.reshape(&[*frames, *dims]),
        _ => Err(mlx::Error::Mlx(format!(
            "a greedy decode takes one utterance's encoder output [1, T, d], got {shape:?}"
        ))),
    }
}

/// `1 - H(p)/ln(classes)` for each row of probabilities `p` over the last
/// axis, with parakeet-mlx's `1e-10` inside the logarithm.
fn entropy_confidence(probs: &mlx::Array) -> mlx::Result<mlx::Array> {
    let classes = probs.dim(-1)? as f64;
    let entropy = probs
        .multiply(&probs.add_scalar(1e-10)?.log()?)?
        .sum(&[-1], false)?
        .negative()?;
    entropy
        .div_scalar(classes.ln())?
        .scalar_binary(1.0, mlx::BinaryOp::Subtract)
}
