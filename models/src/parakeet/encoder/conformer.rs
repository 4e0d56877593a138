//! The Conformer block (Gulati et al., 2020, §2): two half-step
//! feed-forward modules around self-attention and a convolution module, each
//! pre-normalized and residual, then a final layer norm.

use mlx::Array;

use super::attention::{AttentionSpan, RelPositionSelfAttention};
use crate::nn::{LayerNorm, Linear, Matrix};
use crate::parakeet::config::EncoderConfig;
use crate::weights::{WeightError, Weights};

/// MLX `BatchNorm`'s variance floor.
const BATCH_NORM_EPS: f32 = 1e-5;

/// Linear → SiLU (Swish) → linear.
#[derive(Debug, Clone)]
pub struct FeedForward {
    pub linear1: Linear,
    pub linear2: Linear,
}

impl FeedForward {
    fn load(w: &Weights, prefix: &str, c: &EncoderConfig) -> Result<FeedForward, WeightError> {
        let (d, inner) = (c.d_model, c.d_model * c.ff_expansion_factor);
        Ok(FeedForward {
            linear1: Linear::load(w, &format!("{prefix}.linear1"), d, inner, c.use_bias)?,
            linear2: Linear::load(w, &format!("{prefix}.linear2"), inner, d, c.use_bias)?,
        })
    }

    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        self.linear2.forward(&self.linear1.forward(x)?.silu()?)
    }
}

/// A width-1 convolution `[out, 1, in]` as the linear layer it is.
fn pointwise(
    w: &Weights,
    prefix: &str,
    input: i32,
    output: i32,
    bias: bool,
) -> Result<Linear, WeightError> {
    let weight = w
        .get_shaped(&format!("{prefix}.weight"), &[output, 1, input])?
        .reshape(&[output, input])?;
    let bias = if bias {
        Some(w.get_shaped(&format!("{prefix}.bias"), &[output])?)
    } else {
        None
    };
    Ok(Linear {
        weight: Matrix::Dense(weight),
        bias,
    })
}

/// Pointwise convolution to twice the width → GLU → depthwise convolution
/// over time ("same" padding) with its batch norm folded in → SiLU →
/// pointwise convolution.
#[derive(Debug, Clone)]
pub struct ConvolutionModule {
    pub pointwise_conv1: Linear,
    /// `[d_model, kernel, 1]`, the batch norm's scale folded in.
    pub depthwise_weight: Array,
    /// The depthwise bias through the batch norm.
    pub depthwise_bias: Array,
    pub pointwise_conv2: Linear,
    pub kernel: i32,
}

impl ConvolutionModule {
    fn load(
        w: &Weights,
        prefix: &str,
        c: &EncoderConfig,
    ) -> Result<ConvolutionModule, WeightError> {
        let (d, kernel) = (c.d_model, c.conv_kernel_size);
        let get = |name: &str, shape: &[i32]| w.get_shaped(&format!("{prefix}.{name}"), shape);
        let weight = get("depthwise_conv.weight", &[d, kernel, 1])?;
        let bias = if c.use_bias {
            get("depthwise_conv.bias", &[d])?
        } else {
            Array::zeros(&[d], weight.dtype())?
        };
        // Inference batch norm is y·γ/√(σ²+ε) + (β - μ·γ/√(σ²+ε)) per
        // channel: a per-channel scale and shift the convolution absorbs.
        let scale = get("batch_norm.weight", &[d])?.multiply(
            &get("batch_norm.running_var", &[d])?
                .add_scalar(f64::from(BATCH_NORM_EPS))?
                .rsqrt()?,
        )?;
        let shift = get("batch_norm.bias", &[d])?;
        let mean = get("batch_norm.running_mean", &[d])?;
        Ok(ConvolutionModule {
            pointwise_conv1: pointwise(
                w,
                &format!("{prefix}.pointwise_conv1"),
                d,
                2 * d,
                c.use_bias,
            )?,
            depthwise_weight: weight.multiply(&scale.reshape(&[d, 1, 1])?)?,
            depthwise_bias: bias.subtract(&mean)?.multiply(&scale)?.add(&shift)?,
            pointwise_conv2: pointwise(w, &format!("{prefix}.pointwise_conv2"), d, d, c.use_bias)?,
            kernel,
        })
    }

    /// `[B, T, d]` → `[B, T, d]`.
    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let gated = self.pointwise_conv1.forward(x)?.glu()?;
        let width = gated.dim(2)?;
        let y = gated
            .conv1d(&self.depthwise_weight, 1, (self.kernel - 1) / 2, 1, width)?
            .add(&self.depthwise_bias)?;
        self.pointwise_conv2.forward(&y.silu()?)
    }
}

#[derive(Debug, Clone)]
pub struct ConformerLayer {
    pub norm_feed_forward1: LayerNorm,
    pub feed_forward1: FeedForward,
    pub norm_self_att: LayerNorm,
    pub self_attn: RelPositionSelfAttention,
    pub norm_conv: LayerNorm,
    pub conv: ConvolutionModule,
    pub norm_feed_forward2: LayerNorm,
    pub feed_forward2: FeedForward,
    pub norm_out: LayerNorm,
}

impl ConformerLayer {
    /// `prefix` is the layer (`encoder.layers.3`).
    pub fn load(
        w: &Weights,
        prefix: &str,
        c: &EncoderConfig,
    ) -> Result<ConformerLayer, WeightError> {
        let sub = |name: &str| format!("{prefix}.{name}");
        let norm = |name: &str| LayerNorm::load(w, &sub(name), c.d_model);
        Ok(ConformerLayer {
            norm_feed_forward1: norm("norm_feed_forward1")?,
            feed_forward1: FeedForward::load(w, &sub("feed_forward1"), c)?,
            norm_self_att: norm("norm_self_att")?,
            self_attn: RelPositionSelfAttention::load(w, &sub("self_attn"), c)?,
            norm_conv: norm("norm_conv")?,
            conv: ConvolutionModule::load(w, &sub("conv"), c)?,
            norm_feed_forward2: norm("norm_feed_forward2")?,
            feed_forward2: FeedForward::load(w, &sub("feed_forward2"), c)?,
            norm_out: norm("norm_out")?,
        })
    }

    /// `x` `[B, T, d]`, `positions` the relative position embeddings its
    /// attention over `span` reads (see [`RelPositionSelfAttention::forward`]).
    pub fn forward(&self, x: &Array, positions: &Array, span: AttentionSpan) -> mlx::Result<Array> {
        let half_step = |ff: &FeedForward, norm: &LayerNorm, x: &Array| {
            x.add(&ff.forward(&norm.forward(x)?)?.mul_scalar(0.5)?)
        };
        let x = half_step(&self.feed_forward1, &self.norm_feed_forward1, x)?;
        let x = x.add(&self.self_attn.forward(
            &self.norm_self_att.forward(&x)?,
            positions,
            span,
        )?)?;
        let x = x.add(&self.conv.forward(&self.norm_conv.forward(&x)?)?)?;
        let x = half_step(&self.feed_forward2, &self.norm_feed_forward2, &x)?;
        self.norm_out.forward(&x)
    }
}
