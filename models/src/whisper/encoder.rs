//! Whisper's audio encoder: two convolutions (the second halves the frame
//! rate), sinusoidal positions, pre-LN transformer blocks, a final norm.

use mlx::Array;

use super::attention::ResidualAttentionBlock;
use super::config::WhisperDims;
use crate::nn::{Conv1d, LayerNorm};
use crate::weights::{WeightError, Weights};

/// openai-whisper's `sinusoids(length, channels)`, in f32 arithmetic as it
/// computes them.
pub fn sinusoids(length: i32, channels: i32) -> mlx::Result<Array> {
    let half = channels / 2;
    let increment = (10000f32).ln() / (half - 1) as f32;
    let inv: Vec<f32> = (0..half).map(|i| (-increment * i as f32).exp()).collect();
    let mut table = Vec::with_capacity((length * channels) as usize);
    for t in 0..length {
        let scaled = inv.iter().map(|f| t as f32 * f);
        let (sin, cos): (Vec<f32>, Vec<f32>) = scaled.map(|x| (x.sin(), x.cos())).unzip();
        table.extend(sin);
        table.extend(cos);
    }
    Array::from_slice(&table, &[length, channels])
}

/// The encoder's position table as the reference implementations use it.
/// Published checkpoints (OpenAI `.pt`, CTranslate2 float16) store the
/// sinusoids in float16, and openai-whisper and faster-whisper add those
/// stored values; the MLX layout recomputes them, so round the same way.
/// Measured on jfk.wav with tiny.en: encoder error vs openai-whisper 3.7e-3
/// with exact f32 sinusoids, 1.1e-3 with float16-rounded ones.
fn checkpoint_positions(length: i32, channels: i32) -> mlx::Result<Array> {
    sinusoids(length, channels)?
        .astype(mlx::Dtype::F16)?
        .astype(mlx::Dtype::F32)
}

#[derive(Debug, Clone)]
pub struct AudioEncoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Array,
    blocks: Vec<ResidualAttentionBlock>,
    ln_post: LayerNorm,
}

impl AudioEncoder {
    pub fn load(w: &Weights, c: &WhisperDims) -> Result<AudioEncoder, WeightError> {
        let n = c.n_audio_state;
        let blocks = (0..c.n_audio_layer)
            .map(|i| {
                ResidualAttentionBlock::load(
                    w,
                    &format!("encoder.blocks.{i}"),
                    n,
                    c.n_audio_head,
                    false,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(AudioEncoder {
            conv1: Conv1d::load(w, "encoder.conv1", c.n_mels, n, 3, 1)?,
            conv2: Conv1d::load(w, "encoder.conv2", n, n, 3, 2)?,
            positions: checkpoint_positions(c.n_audio_ctx, n)?,
            blocks,
            ln_post: LayerNorm::load(w, "encoder.ln_post", n)?,
        })
    }

    /// `mel`: `[B, 2 * n_audio_ctx, n_mels]` → `[B, n_audio_ctx, n_audio_state]`.
    pub fn forward(&self, mel: &Array) -> mlx::Result<Array> {
        let x = self.conv1.forward(mel)?.gelu()?;
        let x = self.conv2.forward(&x)?.gelu()?;
        let frames = x.dim(1)?;
        if frames != self.positions.dim(0)? {
            return Err(mlx::Error::Mlx(format!(
                "encoder input gives {frames} frames after the convolutions, the model expects {}",
                self.positions.dim(0)?
            )));
        }
        let mut x = x.add(&self.positions)?;
        for block in &self.blocks {
            x = block.forward(&x, None, None)?;
        }
        self.ln_post.forward(&x)
    }
}
