//! Silero VAD v6 (Silero Team, 2024) on MLX arrays: a speech probability
//! for every 32 ms of 16 kHz audio. Each frame, with the last samples of the
//! frame before it as context, goes through a fixed STFT basis (magnitude
//! spectrum), four convolutions with ReLU, then an LSTM cell whose state
//! runs from frame to frame, ReLU, a linear head and a sigmoid.
//!
//! Frames are independent until the LSTM, so [`Silero::probabilities`]
//! runs the front end of a whole block of frames as one batch, the LSTM over
//! the block's frames in order, and evaluates once per block; a
//! [`SileroState`] carries the recurrent state and the context from one
//! block to the next, so any split of a recording into blocks of whole
//! frames gives the same probabilities.

mod blocks;
mod config;

use crate::model_config::{LoadError, ModelFolder};
use std::path::Path;

use mlx::Array;

pub use blocks::{Decoder, EncoderBlock, Stft};
pub use config::SileroConfig;

use crate::nn::LstmState;
use crate::weights::{WeightError, Weights};

#[derive(Debug, thiserror::Error)]
pub enum SileroError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A block that is not a whole number of frames.
    #[error("Silero VAD takes whole frames of {frame} samples, got {samples} samples")]
    PartialFrame { samples: usize, frame: usize },
    #[error(transparent)]
    Mlx(#[from] mlx::Error),
}

/// A loaded model.
#[derive(Debug, Clone)]
pub struct Silero {
    pub config: SileroConfig,
    pub stft: Stft,
    pub encoder: Vec<EncoderBlock>,
    pub decoder: Decoder,
}

/// What carries over from one block of frames to the next: the LSTM state
/// and the context (the last samples seen).
#[derive(Debug, Clone)]
pub struct SileroState {
    lstm: LstmState,
    context: Vec<f32>,
}

impl Silero {
    /// Loads an MLX Silero folder (`config.json` + `weights.safetensors`)
    /// and evaluates every weight once.
    pub fn load(dir: &Path) -> Result<Silero, SileroError> {
        let ModelFolder {
            config,
            weights,
            weights_path,
        } = ModelFolder::<SileroConfig>::open(dir)?;
        let werr = |error| LoadError::weights(&weights_path, error);
        let model = Silero::from_weights(&weights, config).map_err(werr)?;
        // Derived arrays too (the transposed basis, the summed LSTM
        // biases): an unevaluated array belongs to the stream of the thread
        // that made it, and the model may run on another.
        mlx::eval(&model.arrays()).map_err(|e| werr(WeightError::Mlx(e)))?;
        Ok(model)
    }

    /// Every array the forward pass reads.
    pub fn arrays(&self) -> Vec<&Array> {
        let mut out = self.stft.arrays();
        for block in &self.encoder {
            out.extend([&block.conv.weight, &block.conv.bias]);
        }
        let lstm = &self.decoder.lstm;
        out.extend([&lstm.weight_ih, &lstm.weight_hh, &lstm.bias]);
        out.extend(self.decoder.head.weight.arrays());
        out.extend(&self.decoder.head.bias);
        out
    }

    /// The model on `weights` named as the converter writes them.
    pub fn from_weights(w: &Weights, config: SileroConfig) -> Result<Silero, WeightError> {
        let mut input = config.bins();
        let mut encoder = Vec::with_capacity(config.encoder_channels.len());
        for (i, (&output, &stride)) in config
            .encoder_channels
            .iter()
            .zip(&config.encoder_strides)
            .enumerate()
        {
            encoder.push(EncoderBlock::load(w, i, input, output, stride)?);
            input = output;
        }
        Ok(Silero {
            stft: Stft::load(w, &config)?,
            encoder,
            decoder: Decoder::load(w, config.hidden)?,
            config,
        })
    }

    /// The state before a recording's first frame: zero LSTM state, zero
    /// context.
    pub fn initial_state(&self) -> Result<SileroState, SileroError> {
        Ok(SileroState {
            lstm: self.decoder.zero_state()?,
            context: vec![0.0; self.config.context_samples as usize],
        })
    }

    /// The speech probability of each frame of `samples` (a whole number of
    /// frames, 16 kHz, in [-1, 1]), continuing from `state`, which is
    /// advanced past them.
    pub fn probabilities(
        &self,
        samples: &[f32],
        state: &mut SileroState,
    ) -> Result<Vec<f32>, SileroError> {
        let frame = self.config.frame_samples as usize;
        if !samples.len().is_multiple_of(frame) {
            return Err(SileroError::PartialFrame {
                samples: samples.len(),
                frame,
            });
        }
        let n = samples.len() / frame;
        if n == 0 {
            return Ok(Vec::new());
        }
        // Each input row: the context (the previous frame's last samples)
        // then the frame.
        let context = state.context.len();
        let mut rows = Vec::with_capacity(n * (context + frame));
        for (i, f) in samples.chunks_exact(frame).enumerate() {
            let before = if i == 0 {
                &state.context[..]
            } else {
                &samples[i * frame - context..i * frame]
            };
            rows.extend_from_slice(before);
            rows.extend_from_slice(f);
        }
        let x = Array::from_slice(&rows, &[n as i32, (context + frame) as i32])?;
        let mut h = self.stft.forward(&x)?;
        for block in &self.encoder {
            h = block.forward(&h)?;
        }
        // The encoder leaves one step per frame: the frames become the
        // LSTM's time axis.
        let h = h.reshape(&[1, n as i32, self.config.hidden])?;
        let (probs, lstm) = self.decoder.forward(&h, &state.lstm)?;
        mlx::eval(&[&probs, &lstm.h, &lstm.c])?;
        state.lstm = lstm;
        state.context = samples[samples.len() - context..].to_vec();
        Ok(probs.to_vec::<f32>()?)
    }
}
