//! FastConformer's "dw_striding" subsampling (Rekesh et al., 2023, §3.1):
//! the log-mel matrix as a one-channel image, halved in time and frequency
//! by a full 3×3 stride-2 convolution and then by depthwise-separable ones
//! (a depthwise 3×3 stride-2 convolution and a pointwise one), each
//! followed by ReLU, until time is `subsampling_factor` times shorter; the
//! channels × remaining frequency bins of each frame are then projected to
//! `d_model`.

use mlx::Array;

use crate::nn::Linear;
use crate::parakeet::config::EncoderConfig;
use crate::weights::{WeightError, Weights};

const KERNEL: i32 = 3;
const STRIDE: i32 = 2;
const PADDING: i32 = (KERNEL - 1) / 2;

/// Length after one stride-2 convolution of the stack (time or frequency).
fn halved(len: i32) -> i32 {
    (len + 2 * PADDING - KERNEL).div_euclid(STRIDE) + 1
}

/// One 2-D convolution of the stack, NHWC, weight `[out, kh, kw, in / groups]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: Array,
    pub bias: Array,
    pub stride: i32,
    pub padding: i32,
    pub groups: i32,
}

impl Conv2d {
    fn load(
        w: &Weights,
        prefix: &str,
        [out, kernel, input]: [i32; 3],
        stride: i32,
        groups: i32,
    ) -> Result<Conv2d, WeightError> {
        Ok(Conv2d {
            weight: w.get_shaped(
                &format!("{prefix}.weight"),
                &[out, kernel, kernel, input / groups],
            )?,
            bias: w.get_shaped(&format!("{prefix}.bias"), &[out])?,
            stride,
            padding: (kernel - 1) / 2,
            groups,
        })
    }

    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        x.conv2d(
            &self.weight,
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            self.groups,
        )?
        .add(&self.bias)
    }
}

/// A depthwise stride-2 convolution and a pointwise one: one halving step
/// after the first.
#[derive(Debug, Clone)]
pub struct SeparableStep {
    pub depthwise: Conv2d,
    pub pointwise: Conv2d,
}

#[derive(Debug, Clone)]
pub struct DwStridingSubsampling {
    /// The full convolution from the one input channel.
    pub first: Conv2d,
    pub steps: Vec<SeparableStep>,
    /// Channels × remaining frequency bins → `d_model`.
    pub out: Linear,
    halvings: u32,
}

impl DwStridingSubsampling {
    /// `prefix` is the subsampling module (`encoder.pre_encode`), whose
    /// `conv` list holds the convolutions with the activations between
    /// them counted as entries: the first at 0, then each step's depthwise
    /// and pointwise at 3k-1 and 3k for k = 1, 2, ….
    pub fn load(
        w: &Weights,
        prefix: &str,
        c: &EncoderConfig,
    ) -> Result<DwStridingSubsampling, WeightError> {
        let channels = c.subsampling_conv_channels;
        let halvings = c.subsampling_factor.trailing_zeros();
        let conv = |index: u32| format!("{prefix}.conv.{index}");
        let first = Conv2d::load(w, &conv(0), [channels, KERNEL, 1], STRIDE, 1)?;
        let steps = (1..halvings)
            .map(|k| {
                Ok(SeparableStep {
                    depthwise: Conv2d::load(
                        w,
                        &conv(3 * k - 1),
                        [channels, KERNEL, channels],
                        STRIDE,
                        channels,
                    )?,
                    pointwise: Conv2d::load(w, &conv(3 * k), [channels, 1, channels], 1, 1)?,
                })
            })
            .collect::<Result<Vec<_>, WeightError>>()?;
        let freq = (0..halvings).fold(c.feat_in, |f, _| halved(f));
        Ok(DwStridingSubsampling {
            first,
            steps,
            out: Linear::load(
                w,
                &format!("{prefix}.out"),
                channels * freq,
                c.d_model,
                true,
            )?,
            halvings,
        })
    }

    /// Frames out for `frames` in.
    pub fn output_frames(&self, frames: usize) -> usize {
        (0..self.halvings).fold(frames as i32, |t, _| halved(t)) as usize
    }

    /// `[B, T, feat_in]` → `[B, T', d_model]`.
    pub fn forward(&self, features: &Array) -> mlx::Result<Array> {
        // Time and frequency are the image's height and width, one channel.
        let mut x = self
            .first
            .forward(&features.expand_dims(&[3])?)?
            .max_scalar(0.0)?;
        for step in &self.steps {
            x = step.depthwise.forward(&x)?;
            x = step.pointwise.forward(&x)?.max_scalar(0.0)?;
        }
        // Each frame's features channel-major, as the projection was trained.
        let shape = x.shape();
        let (batch, frames) = (shape[0], shape[1]);
        let x = x
            .transpose(&[0, 1, 3, 2])?
            .reshape(&[batch, frames, shape[2] * shape[3]])?;
        self.out.forward(&x)
    }
}
