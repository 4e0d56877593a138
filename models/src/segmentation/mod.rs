//! pyannote's speaker segmentation model (PyanNet, 2022): SincNet features
//! of a 5 s chunk, a stack of bidirectional LSTMs, feed-forward layers and
//! one sigmoid per local speaker, giving for every output frame (≈17 ms
//! apart) the probability that each of up to three speakers is talking.

mod config;
mod sincnet;

use crate::model_config::{LoadError, ModelFolder};
use std::path::Path;

use mlx::Array;

pub use config::{FrameTiming, SegmentationConfig};
pub use sincnet::{InstanceNorm, SincFilters, SincNet};

use crate::nn::{Linear, Lstm};
use crate::weights::{WeightError, Weights};

/// One layer of the recurrent stack: a forward LSTM, and a backward one
/// whose outputs are concatenated after the forward's when bidirectional.
#[derive(Debug, Clone)]
pub struct BiLstmLayer {
    pub forward: Lstm,
    pub backward: Option<Lstm>,
}

impl BiLstmLayer {
    /// Layer `layer` of PyTorch's multi-layer `nn.LSTM` under `prefix`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        layer: i32,
        input: i32,
        c: &SegmentationConfig,
    ) -> Result<BiLstmLayer, WeightError> {
        let direction = |suffix: &str| Lstm::load(w, prefix, suffix, input, c.lstm_hidden);
        Ok(BiLstmLayer {
            forward: direction(&format!("_l{layer}"))?,
            backward: match c.lstm_bidirectional {
                true => Some(direction(&format!("_l{layer}_reverse"))?),
                false => None,
            },
        })
    }

    /// `x` `[batch, frames, in]` → `[batch, frames, H]` or `[.., 2H]`.
    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let (ahead, _) = self.forward.forward(x, None, false)?;
        match &self.backward {
            Some(backward) => {
                let (behind, _) = backward.forward(x, None, true)?;
                mlx::concatenate(&[&ahead, &behind], 2)
            }
            None => Ok(ahead),
        }
    }
}

/// The loaded network.
#[derive(Debug, Clone)]
pub struct Segmentation {
    pub config: SegmentationConfig,
    pub sincnet: SincNet,
    pub lstm: Vec<BiLstmLayer>,
    /// Each followed by a leaky ReLU.
    pub linear: Vec<Linear>,
    pub classifier: Linear,
}

impl Segmentation {
    /// Loads an MLX segmentation folder (`config.json` +
    /// `weights.safetensors`, as the converter writes it) and evaluates
    /// every weight once.
    pub fn load(dir: &Path) -> Result<Segmentation, LoadError> {
        let ModelFolder {
            config,
            weights,
            weights_path,
        } = ModelFolder::<SegmentationConfig>::open(dir)?;
        let werr = |error| LoadError::weights(&weights_path, error);
        let model = Segmentation::from_weights(&weights, config).map_err(werr)?;
        let all: Vec<&Array> = weights.arrays().map(|(_, a)| a).collect();
        mlx::eval(&all).map_err(|e| werr(WeightError::Mlx(e)))?;
        Ok(model)
    }

    fn from_weights(w: &Weights, c: SegmentationConfig) -> Result<Segmentation, WeightError> {
        let directions = if c.lstm_bidirectional { 2 } else { 1 };
        let lstm_out = c.lstm_hidden * directions;
        let lstm = (0..c.lstm_layers)
            .map(|l| {
                let input = if l == 0 { c.conv_channels } else { lstm_out };
                BiLstmLayer::load(w, "lstm", l, input, &c)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let linear = (0..c.linear_layers)
            .map(|l| {
                let input = if l == 0 { lstm_out } else { c.linear_hidden };
                Linear::load(w, &format!("linear.{l}"), input, c.linear_hidden, true)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let features = if c.linear_layers > 0 {
            c.linear_hidden
        } else {
            lstm_out
        };
        Ok(Segmentation {
            sincnet: SincNet::load(w, &c)?,
            lstm,
            linear,
            classifier: Linear::load(w, "classifier", features, c.speakers, true)?,
            config: c,
        })
    }

    /// Speaker probabilities `[batch, frames, speakers]` in `[0, 1]` for
    /// `chunks` `[batch, samples]` (f32 at the model's sample rate; any
    /// length of at least one frame's receptive field, 5 s as trained).
    /// Lazy: one evaluation of the result runs the whole batch.
    pub fn forward(&self, chunks: &Array) -> mlx::Result<Array> {
        let shape = chunks.shape();
        if shape.len() != 2 || self.frames(shape[1]) < 1 {
            return Err(mlx::Error::Mlx(format!(
                "segmentation input must be [batch, samples] with at least {} samples, got {shape:?}",
                self.config.frame_timing().duration
            )));
        }
        let mut x = self.sincnet.forward(chunks)?;
        for layer in &self.lstm {
            x = layer.forward(&x)?;
        }
        for linear in &self.linear {
            x = sincnet::leaky_relu(&linear.forward(&x)?)?;
        }
        self.classifier.forward(&x)?.sigmoid()
    }

    pub fn sample_rate(&self) -> i32 {
        self.config.sample_rate
    }

    /// Samples of the chunks the model was trained on (80000: 5 s).
    pub fn chunk_samples(&self) -> i32 {
        self.config.chunk_samples
    }

    /// Local speakers per chunk (outputs per frame).
    pub fn speakers(&self) -> i32 {
        self.config.speakers
    }

    /// Output frames for a chunk of `samples` samples (293 for 5 s); 0 when
    /// shorter than one frame's receptive field.
    pub fn frames(&self, samples: i32) -> i32 {
        self.config.frames(samples)
    }

    /// Where each output frame lies in its chunk, in samples.
    pub fn frame_timing(&self) -> FrameTiming {
        self.config.frame_timing()
    }
}
