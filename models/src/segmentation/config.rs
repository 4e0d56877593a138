//! The segmentation model's schema (`config.json` of its MLX folder) and
//! the timing of its output frames, derived from the convolutions' receptive
//! field as pyannote.audio derives it.

use crate::model_config::ModelConfig;
use serde::{Deserialize, Serialize};

/// PyanNet's sizes and the task it was trained for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentationConfig {
    pub sample_rate: i32,
    /// Samples per chunk the model was trained on (5 s).
    pub chunk_samples: i32,
    /// Local speakers per chunk, one sigmoid output each.
    pub speakers: i32,
    /// Sinc band-pass filters (cosine and sine halves) of the first layer.
    pub sinc_filters: i32,
    pub sinc_kernel: i32,
    pub sinc_stride: i32,
    /// Channels of the two plain convolutions after the sinc layer.
    pub conv_channels: i32,
    pub conv_kernel: i32,
    /// Kernel and stride of the max pooling after each convolution.
    pub pool: i32,
    pub lstm_hidden: i32,
    pub lstm_layers: i32,
    pub lstm_bidirectional: bool,
    pub linear_hidden: i32,
    pub linear_layers: i32,
}

/// Times of the output frames, in samples from the chunk's first sample:
/// frame `i` covers `[start + i·step, start + i·step + duration)`, the
/// receptive field of that frame (pyannote's `Model.receptive_field`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameTiming {
    pub start: f64,
    pub duration: f64,
    pub step: f64,
}

impl FrameTiming {
    /// The middle of frame `i`, in samples.
    pub fn center(&self, i: usize) -> f64 {
        self.start + i as f64 * self.step + self.duration / 2.0
    }
}

impl SegmentationConfig {
    /// `(kernel, stride)` of each layer that changes the frame rate, first
    /// to last: sinc convolution, then pooling, convolution, pooling,
    /// convolution, pooling (no padding, no dilation).
    fn layers(&self) -> [(i64, i64); 6] {
        let (pool, conv) = (self.pool as i64, self.conv_kernel as i64);
        [
            (self.sinc_kernel as i64, self.sinc_stride as i64),
            (pool, pool),
            (conv, 1),
            (pool, pool),
            (conv, 1),
            (pool, pool),
        ]
    }

    /// Output frames for an input of `samples` samples; 0 when the input is
    /// shorter than one frame's receptive field.
    pub fn frames(&self, samples: i32) -> i32 {
        let mut n = samples as i64;
        for (kernel, stride) in self.layers() {
            if n < kernel {
                return 0;
            }
            n = (n - kernel) / stride + 1;
        }
        n as i32
    }

    /// Input samples that `frames` consecutive output frames depend on.
    fn receptive_field_size(&self, frames: i64) -> i64 {
        self.layers()
            .iter()
            .rev()
            .fold(frames, |n, &(kernel, stride)| kernel + (n - 1) * stride)
    }

    /// Index of the input sample at the centre of frame 0's receptive field.
    fn receptive_field_center(&self) -> i64 {
        self.layers()
            .iter()
            .rev()
            .fold(0, |i, &(kernel, stride)| i * stride + (kernel - 1) / 2)
    }

    /// The output frames' timing in samples (for the published model:
    /// start 0, duration 991, step 270).
    pub fn frame_timing(&self) -> FrameTiming {
        let size = self.receptive_field_size(1);
        FrameTiming {
            start: self.receptive_field_center() as f64 - (size - 1) as f64 / 2.0,
            duration: size as f64,
            step: (self.receptive_field_size(2) - size) as f64,
        }
    }
}

impl ModelConfig for SegmentationConfig {
    const WHAT: &'static str = "a segmentation config";

    fn validate(&self) -> Result<(), String> {
        let sizes = [
            self.sample_rate,
            self.chunk_samples,
            self.speakers,
            self.sinc_filters,
            self.sinc_kernel,
            self.sinc_stride,
            self.conv_channels,
            self.conv_kernel,
            self.pool,
            self.lstm_hidden,
            self.lstm_layers,
            self.linear_hidden,
        ];
        if sizes.iter().any(|&d| d <= 0) || self.linear_layers < 0 {
            return Err(format!("a size is not positive: {self:?}"));
        }
        if self.sinc_filters % 2 != 0 || self.sinc_kernel % 2 == 0 {
            return Err(format!(
                "sinc filters come in cosine/sine pairs of odd length: {self:?}"
            ));
        }
        if self.frames(self.chunk_samples) < 1 {
            return Err(format!("a chunk is shorter than one frame: {self:?}"));
        }
        Ok(())
    }
}
