//! SincNet (Ravanelli & Bengio, 2018) as pyannote uses it: the waveform,
//! instance-normalized, goes through a bank of learned band-pass (sinc)
//! filters, then two plain convolutions; each convolution is followed by
//! max pooling, instance normalization and a leaky ReLU. Arrays are laid out
//! `[batch, time, channels]`.

use mlx::Array;

use super::config::SegmentationConfig;
use crate::nn::Conv1d;
use crate::weights::{WeightError, Weights};

/// Negative slope of PyTorch's `leaky_relu` default.
const LEAKY_SLOPE: f64 = 0.01;

/// PyTorch's `InstanceNorm1d` default.
const NORM_EPS: f64 = 1e-5;

pub(super) fn leaky_relu(x: &Array) -> mlx::Result<Array> {
    x.maximum(&x.mul_scalar(LEAKY_SLOPE)?)
}

/// Normalization of each channel of each sequence over time (biased
/// variance, statistics of the input itself), then a learned scale and
/// shift per channel.
#[derive(Debug, Clone)]
pub struct InstanceNorm {
    pub weight: Array,
    pub bias: Array,
}

impl InstanceNorm {
    pub fn load(w: &Weights, prefix: &str, channels: i32) -> Result<InstanceNorm, WeightError> {
        Ok(InstanceNorm {
            weight: w.get_shaped(&format!("{prefix}.weight"), &[channels])?,
            bias: w.get_shaped(&format!("{prefix}.bias"), &[channels])?,
        })
    }

    /// `x` `[batch, time, channels]`.
    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let mean = x.mean(&[1], true)?;
        let centered = x.subtract(&mean)?;
        let scale = centered
            .square()?
            .mean(&[1], true)?
            .add_scalar(NORM_EPS)?
            .rsqrt()?
            .multiply(&self.weight)?;
        centered.multiply(&scale)?.add(&self.bias)
    }
}

/// `x` `[batch, time, channels]` (row-major) seen as non-overlapping
/// windows of `size` steps, `[batch, windows, size, channels]`; a trailing
/// partial window is left out. A view: nothing is copied.
fn pool_windows(x: &Array, size: i32) -> mlx::Result<Array> {
    let [batch, time, channels] = x.shape()[..] else {
        return Err(mlx::Error::Mlx(format!(
            "pooling needs [batch, time, channels], got {:?}",
            x.shape()
        )));
    };
    let c = channels as i64;
    x.as_strided(
        &[batch, time / size, size, channels],
        &[time as i64 * c, size as i64 * c, c, 1],
        0,
    )
}

/// Maximum over non-overlapping windows of `size` steps along time.
fn max_pool(x: &Array, size: i32) -> mlx::Result<Array> {
    pool_windows(x, size)?.max(&[2], false)
}

/// `max_pool(|x|)`, as the larger of the window's maximum and its negated
/// minimum: two reductions instead of a pass over the whole input.
fn max_abs_pool(x: &Array, size: i32) -> mlx::Result<Array> {
    let windows = pool_windows(x, size)?;
    windows
        .max(&[2], false)?
        .maximum(&windows.min(&[2], false)?.negative()?)
}

/// The sinc band-pass filter bank, precomputed by the converter from the
/// learned cut-off frequencies: a single-channel strided convolution.
#[derive(Debug, Clone)]
pub struct SincFilters {
    /// `[filters, kernel]`.
    pub weight: Array,
    pub stride: i32,
}

impl SincFilters {
    pub fn load(
        w: &Weights,
        prefix: &str,
        c: &SegmentationConfig,
    ) -> Result<SincFilters, WeightError> {
        let weight = w.get_shaped(
            &format!("{prefix}.weight"),
            &[c.sinc_filters, c.sinc_kernel, 1],
        )?;
        Ok(SincFilters {
            weight: weight.reshape(&[c.sinc_filters, c.sinc_kernel])?,
            stride: c.sinc_stride,
        })
    }

    /// `x` `[batch, samples]` → `[batch, frames, filters]`. Each output
    /// frame is the product of one strided window of the input with the
    /// bank: one matrix product over a strided view of the waveform.
    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let (batch, samples) = (x.dim(0)?, x.dim(1)?);
        let kernel = self.weight.dim(1)?;
        let frames = (samples - kernel) / self.stride + 1;
        let windows = x.as_strided(
            &[batch, frames, kernel],
            &[samples as i64, self.stride as i64, 1],
            0,
        )?;
        windows.matmul(&self.weight.transpose(&[1, 0])?)
    }
}

#[derive(Debug, Clone)]
pub struct SincNet {
    pub waveform_norm: InstanceNorm,
    pub sinc: SincFilters,
    pub convs: [Conv1d; 2],
    /// After the sinc layer and after each convolution.
    pub norms: [InstanceNorm; 3],
    pub pool: i32,
}

impl SincNet {
    pub fn load(w: &Weights, c: &SegmentationConfig) -> Result<SincNet, WeightError> {
        let conv = |i: i32, input: i32| -> Result<Conv1d, WeightError> {
            let prefix = format!("sincnet.conv1d.{i}");
            Ok(Conv1d {
                padding: 0,
                ..Conv1d::load(w, &prefix, input, c.conv_channels, c.conv_kernel, 1)?
            })
        };
        let norm =
            |i: i32, channels: i32| InstanceNorm::load(w, &format!("sincnet.norm1d.{i}"), channels);
        Ok(SincNet {
            waveform_norm: InstanceNorm::load(w, "sincnet.wav_norm1d", 1)?,
            sinc: SincFilters::load(w, "sincnet.conv1d.0", c)?,
            convs: [conv(1, c.sinc_filters)?, conv(2, c.conv_channels)?],
            norms: [
                norm(0, c.sinc_filters)?,
                norm(1, c.conv_channels)?,
                norm(2, c.conv_channels)?,
            ],
            pool: c.pool,
        })
    }

    /// `waveforms` `[batch, samples]` → features `[batch, frames, channels]`.
    pub fn forward(&self, waveforms: &Array) -> mlx::Result<Array> {
        let x = self
            .waveform_norm
            .forward(&waveforms.expand_dims(&[2])?)?
            .squeeze(&[2])?;
        // The magnitude of the sinc responses is pooled: their sign
        // carries no information (SincNet issue #4).
        let pooled = max_abs_pool(&self.sinc.forward(&x)?, self.pool)?;
        let mut x = leaky_relu(&self.norms[0].forward(&pooled)?)?;
        for (conv, norm) in self.convs.iter().zip(&self.norms[1..]) {
            let pooled = max_pool(&conv.forward(&x)?, self.pool)?;
            x = leaky_relu(&norm.forward(&pooled)?)?;
        }
        Ok(x)
    }
}
