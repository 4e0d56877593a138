//! The FastConformer encoder (Rekesh et al., 2023, "Fast Conformer with
//! Linearly Scalable Attention for Efficient Speech Recognition"): log-mel
//! frames subsampled 8× by depthwise-separable convolutions, then Conformer
//! layers with relative-position self-attention over every frame or, for
//! long audio, a band of frames around each. Parameter names are
//! parakeet-mlx's (`encoder.pre_encode.…`, `encoder.layers.N.…`).

mod attention;
mod conformer;
mod subsampling;

use mlx::Array;

pub use attention::{relative_positions, AttentionSpan, RelPositionSelfAttention};
pub use conformer::{ConformerLayer, ConvolutionModule, FeedForward};
pub use subsampling::{Conv2d, DwStridingSubsampling, SeparableStep};

use super::config::EncoderConfig;
use crate::weights::{WeightError, Weights};

#[derive(Debug, Clone)]
pub struct Encoder {
    pub pre_encode: DwStridingSubsampling,
    pub layers: Vec<ConformerLayer>,
    /// Multiplies the subsampled frames (`sqrt(d_model)` with `xscaling`).
    pub input_scale: f32,
    pub d_model: i32,
    /// The keys each frame attends to. The weights are the same for every
    /// span: local attention is how a model trained with full attention
    /// runs long audio in bounded memory.
    pub span: AttentionSpan,
}

impl Encoder {
    /// Loads `{prefix}.pre_encode.…` and `{prefix}.layers.N.…`, folding each
    /// convolution module's batch norm into its depthwise convolution; the
    /// attention spans what [`EncoderConfig::attention_span`] says.
    pub fn load(w: &Weights, prefix: &str, c: &EncoderConfig) -> Result<Encoder, WeightError> {
        let layers = (0..c.n_layers)
            .map(|i| ConformerLayer::load(w, &format!("{prefix}.layers.{i}"), c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Encoder {
            pre_encode: DwStridingSubsampling::load(w, &format!("{prefix}.pre_encode"), c)?,
            layers,
            input_scale: if c.xscaling {
                (c.d_model as f32).sqrt()
            } else {
                1.0
            },
            d_model: c.d_model,
            span: c.attention_span(),
        })
    }

    /// Encoder frames for `input_frames` feature frames.
    pub fn output_frames(&self, input_frames: usize) -> usize {
        self.pre_encode.output_frames(input_frames)
    }

    /// Features `[B, T, feat_in]` (each row one whole utterance: there is no
    /// padding mask) → `[B, output_frames(T), d_model]`.
    pub fn forward(&self, features: &Array) -> mlx::Result<Array> {
        let mut x = self.pre_encode.forward(features)?;
        if self.input_scale != 1.0 {
            x = x.mul_scalar(f64::from(self.input_scale))?;
        }
        let (first, last) = self.span.offsets(x.dim(1)?);
        let positions = relative_positions(first, last, self.d_model)?.astype(x.dtype())?;
        for layer in &self.layers {
            x = layer.forward(&x, &positions, self.span)?;
        }
        Ok(x)
    }
}
