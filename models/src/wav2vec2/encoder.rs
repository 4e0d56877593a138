//! The context network (Baevski et al., 2020, §2): a convolutional relative
//! position embedding added to the projected latents, then a transformer.
//! Base models use post-LN layers after an input layer norm; large / lv60
//! ("stable layer norm") use pre-LN layers and a final layer norm.

use mlx::fast::{scaled_dot_product_attention, AttentionMask};
use mlx::Array;

use super::config::Wav2Vec2Config;
use crate::nn::{merge_heads, split_heads, LayerNorm, Linear};
use crate::weights::{WeightError, Weights};

fn layer_norm(w: &Weights, prefix: &str, c: &Wav2Vec2Config) -> Result<LayerNorm, WeightError> {
    let mut norm = LayerNorm::load(w, prefix, c.hidden_size)?;
    norm.eps = c.layer_norm_eps;
    Ok(norm)
}

/// Grouped convolution over time with "same" padding, then GELU. The
/// checkpoint's weight normalization is folded into `weight` at conversion.
#[derive(Debug, Clone)]
pub struct PositionalConvEmbedding {
    /// `[hidden, kernel, hidden / groups]`.
    pub weight: Array,
    pub bias: Array,
    pub kernel: i32,
    pub groups: i32,
}

impl PositionalConvEmbedding {
    fn load(w: &Weights, c: &Wav2Vec2Config) -> Result<PositionalConvEmbedding, WeightError> {
        let (hidden, kernel, groups) = (
            c.hidden_size,
            c.num_conv_pos_embeddings,
            c.num_conv_pos_embedding_groups,
        );
        Ok(PositionalConvEmbedding {
            weight: w.get_shaped(
                "encoder.pos_conv_embed.conv.weight",
                &[hidden, kernel, hidden / groups],
            )?,
            bias: w.get_shaped("encoder.pos_conv_embed.conv.bias", &[hidden])?,
            kernel,
            groups,
        })
    }

    /// `[B, T, hidden]` → `[B, T, hidden]`.
    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let frames = x.dim(1)?;
        // Padding k/2 on both sides gives one frame too many for an even
        // kernel; the last is dropped.
        let y = x
            .conv1d(&self.weight, 1, self.kernel / 2, 1, self.groups)?
            .slice_axis(1, 0, frames)?;
        y.add(&self.bias)?.gelu()
    }
}

/// Multi-head self-attention over all frames (no mask: one utterance per row).
#[derive(Debug, Clone)]
pub struct SelfAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub heads: i32,
}

impl SelfAttention {
    fn load(w: &Weights, prefix: &str, c: &Wav2Vec2Config) -> Result<SelfAttention, WeightError> {
        let proj = |name: &str| {
            Linear::load(
                w,
                &format!("{prefix}.{name}"),
                c.hidden_size,
                c.hidden_size,
                true,
            )
        };
        Ok(SelfAttention {
            q_proj: proj("q_proj")?,
            k_proj: proj("k_proj")?,
            v_proj: proj("v_proj")?,
            out_proj: proj("out_proj")?,
            heads: c.num_attention_heads,
        })
    }

    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let head_dim = x.dim(2)? / self.heads;
        let q = split_heads(&self.q_proj.forward(x)?, self.heads)?;
        let k = split_heads(&self.k_proj.forward(x)?, self.heads)?;
        let v = split_heads(&self.v_proj.forward(x)?, self.heads)?;
        let scale = (head_dim as f32).powf(-0.5);
        let y = scaled_dot_product_attention(&q, &k, &v, scale, AttentionMask::None)?;
        self.out_proj.forward(&merge_heads(&y)?)
    }
}

/// Linear → GELU → linear.
#[derive(Debug, Clone)]
pub struct FeedForward {
    pub intermediate_dense: Linear,
    pub output_dense: Linear,
}

impl FeedForward {
    fn load(w: &Weights, prefix: &str, c: &Wav2Vec2Config) -> Result<FeedForward, WeightError> {
        let (hidden, inner) = (c.hidden_size, c.intermediate_size);
        Ok(FeedForward {
            intermediate_dense: Linear::load(
                w,
                &format!("{prefix}.intermediate_dense"),
                hidden,
                inner,
                true,
            )?,
            output_dense: Linear::load(w, &format!("{prefix}.output_dense"), inner, hidden, true)?,
        })
    }

    fn forward_residual(&self, x: &Array, residual: &Array) -> mlx::Result<Array> {
        self.output_dense
            .forward_residual(&self.intermediate_dense.forward_gelu(x)?, residual)
    }
}

#[derive(Debug, Clone)]
pub struct EncoderLayer {
    pub attention: SelfAttention,
    pub layer_norm: LayerNorm,
    pub feed_forward: FeedForward,
    pub final_layer_norm: LayerNorm,
    /// Pre-LN (normalize each block's input) rather than post-LN.
    pub pre_norm: bool,
}

impl EncoderLayer {
    fn load(w: &Weights, layer: i32, c: &Wav2Vec2Config) -> Result<EncoderLayer, WeightError> {
        let prefix = format!("encoder.layers.{layer}");
        Ok(EncoderLayer {
            attention: SelfAttention::load(w, &format!("{prefix}.attention"), c)?,
            layer_norm: layer_norm(w, &format!("{prefix}.layer_norm"), c)?,
            feed_forward: FeedForward::load(w, &format!("{prefix}.feed_forward"), c)?,
            final_layer_norm: layer_norm(w, &format!("{prefix}.final_layer_norm"), c)?,
            pre_norm: c.do_stable_layer_norm,
        })
    }

    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        if self.pre_norm {
            let x = x.add(&self.attention.forward(&self.layer_norm.forward(x)?)?)?;
            self.feed_forward
                .forward_residual(&self.final_layer_norm.forward(&x)?, &x)
        } else {
            let x = self
                .layer_norm
                .forward(&x.add(&self.attention.forward(x)?)?)?;
            self.final_layer_norm
                .forward(&self.feed_forward.forward_residual(&x, &x)?)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Encoder {
    pub pos_conv_embed: PositionalConvEmbedding,
    /// Applied to the input of the first layer (post-LN) or to the output
    /// of the last (pre-LN).
    pub layer_norm: LayerNorm,
    pub layers: Vec<EncoderLayer>,
    pub pre_norm: bool,
}

impl Encoder {
    pub fn load(w: &Weights, c: &Wav2Vec2Config) -> Result<Encoder, WeightError> {
        Ok(Encoder {
            pos_conv_embed: PositionalConvEmbedding::load(w, c)?,
            layer_norm: layer_norm(w, "encoder.layer_norm", c)?,
            layers: (0..c.num_hidden_layers)
                .map(|layer| EncoderLayer::load(w, layer, c))
                .collect::<Result<_, _>>()?,
            pre_norm: c.do_stable_layer_norm,
        })
    }

    /// Projected latents `[B, T, hidden]` → context vectors `[B, T, hidden]`.
    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let mut x = x.add(&self.pos_conv_embed.forward(x)?)?;
        if !self.pre_norm {
            x = self.layer_norm.forward(&x)?;
        }
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        if self.pre_norm {
            x = self.layer_norm.forward(&x)?;
        }
        Ok(x)
    }
}
