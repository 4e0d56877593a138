//! The convolutional feature encoder (Baevski et al., 2020, §2): raw
//! samples → strided 1-D convolutions, each followed by GELU → one latent
//! vector per 20 ms (320 samples at 16 kHz for the published strides).

use mlx::Array;

use super::config::{FeatExtractNorm, Wav2Vec2Config};
use crate::nn::{LayerNorm, Linear};
use crate::weights::{WeightError, Weights};

/// PyTorch's `GroupNorm` default, which wav2vec2's group norm keeps.
const GROUP_NORM_EPS: f32 = 1e-5;

/// A normalization after a convolution, over `[B, T, C]`.
#[derive(Debug, Clone)]
pub enum ConvNorm {
    None,
    /// One group per channel: each channel normalized over time, then
    /// scaled and shifted per channel.
    PerChannel {
        weight: Array,
        bias: Array,
    },
    /// Over channels at each time step.
    Layer(LayerNorm),
}

impl ConvNorm {
    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        match self {
            ConvNorm::None => Ok(x.clone()),
            ConvNorm::PerChannel { weight, bias } => {
                let mean = x.mean(&[1], true)?;
                let var = x.var(&[1], true)?;
                x.subtract(&mean)?
                    .multiply(&var.add_scalar(f64::from(GROUP_NORM_EPS))?.rsqrt()?)?
                    .multiply(weight)?
                    .add(bias)
            }
            ConvNorm::Layer(norm) => norm.forward(x),
        }
    }
}

/// One convolution (no padding), its normalization and GELU.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    /// `[out, kernel, in]`.
    pub weight: Array,
    pub bias: Option<Array>,
    pub stride: i32,
    pub norm: ConvNorm,
}

impl ConvLayer {
    fn load(w: &Weights, c: &Wav2Vec2Config, layer: usize) -> Result<ConvLayer, WeightError> {
        let prefix = format!("feature_extractor.conv_layers.{layer}");
        let input = if layer == 0 { 1 } else { c.conv_dim[layer - 1] };
        let output = c.conv_dim[layer];
        let weight = w.get_shaped(
            &format!("{prefix}.conv.weight"),
            &[output, c.conv_kernel[layer], input],
        )?;
        let bias = if c.conv_bias {
            Some(w.get_shaped(&format!("{prefix}.conv.bias"), &[output])?)
        } else {
            None
        };
        let norm_prefix = format!("{prefix}.layer_norm");
        let norm = match c.feat_extract_norm {
            FeatExtractNorm::Group if layer == 0 => ConvNorm::PerChannel {
                weight: w.get_shaped(&format!("{norm_prefix}.weight"), &[output])?,
                bias: w.get_shaped(&format!("{norm_prefix}.bias"), &[output])?,
            },
            FeatExtractNorm::Group => ConvNorm::None,
            FeatExtractNorm::Layer => ConvNorm::Layer(LayerNorm::load(w, &norm_prefix, output)?),
        };
        Ok(ConvLayer {
            weight,
            bias,
            stride: c.conv_stride[layer],
            norm,
        })
    }

    /// `[B, T, in]` → `[B, (T - kernel) / stride + 1, out]`.
    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let mut y = x.conv1d(&self.weight, self.stride, 0, 1, 1)?;
        if let Some(bias) = &self.bias {
            y = y.add(bias)?;
        }
        self.norm.forward(&y)?.gelu()
    }
}

#[derive(Debug, Clone)]
pub struct FeatureEncoder {
    pub layers: Vec<ConvLayer>,
}

impl FeatureEncoder {
    pub fn load(w: &Weights, c: &Wav2Vec2Config) -> Result<FeatureEncoder, WeightError> {
        let layers = (0..c.conv_dim.len())
            .map(|layer| ConvLayer::load(w, c, layer))
            .collect::<Result<_, _>>()?;
        Ok(FeatureEncoder { layers })
    }

    /// Samples `[B, S]` → latent frames `[B, frames, conv_dim[-1]]`.
    pub fn forward(&self, samples: &Array) -> mlx::Result<Array> {
        let mut x = samples.expand_dims(&[2])?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}

/// Layer norm and linear projection of the latent frames to the
/// transformer's width.
#[derive(Debug, Clone)]
pub struct FeatureProjection {
    pub layer_norm: LayerNorm,
    pub projection: Linear,
}

impl FeatureProjection {
    pub fn load(w: &Weights, c: &Wav2Vec2Config) -> Result<FeatureProjection, WeightError> {
        let latent = *c
            .conv_dim
            .last()
            .expect("validated: at least one convolution");
        let mut layer_norm = LayerNorm::load(w, "feature_projection.layer_norm", latent)?;
        layer_norm.eps = c.layer_norm_eps;
        Ok(FeatureProjection {
            layer_norm,
            projection: Linear::load(
                w,
                "feature_projection.projection",
                latent,
                c.hidden_size,
                true,
            )?,
        })
    }

    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        self.projection.forward(&self.layer_norm.forward(x)?)
    }
}
