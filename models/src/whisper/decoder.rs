//! Whisper's text decoder: token + learned positional embeddings, pre-LN
//! blocks with causal self-attention (cached) and cross-attention over the
//! encoder output, logits through the tied token embedding.

use mlx::decoder_step::DecoderLayerWeights;
use mlx::{Array, Dtype};

use super::attention::{CrossKv, KvCache, ResidualAttentionBlock};
use super::config::WhisperDims;
use crate::nn::{Embedding, LayerNorm, Matrix};
use crate::weights::{WeightError, Weights};

#[derive(Debug, Clone)]
pub struct TextDecoder {
    token_embedding: Embedding,
    positional_embedding: Array,
    blocks: Vec<ResidualAttentionBlock>,
    ln: LayerNorm,
    /// Cross-attention keys and values stored in f16 (quantized models).
    cross_kv: Dtype,
}

/// Per-window decoding state: cross-attention keys/values of the encoder
/// output (computed once) and the growing self-attention caches.
#[derive(Debug, Clone)]
pub struct DecoderState {
    cross: Vec<CrossKv>,
    selves: Vec<KvCache>,
    /// Tokens already consumed, i.e. the position of the next one.
    pub offset: i32,
}

impl DecoderState {
    /// Keeps the hypotheses `rows` of the self-attention caches, in that
    /// order, and of the cross-attention keys and values when each row has
    /// its own window (one window's are shared by all of its hypotheses).
    pub fn select(&mut self, rows: &[u32]) -> mlx::Result<()> {
        let rows: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let picked = Array::from_slice(&rows, &[rows.len() as i32])?;
        for cross in &mut self.cross {
            if cross.keys.dim(0)? > 1 {
                let (keys, values) = (cross.keys.take(&picked, 0)?, cross.values.take(&picked, 0)?);
                // Layer by layer, so that only one layer's old and new
                // copies are alive at a time.
                mlx::eval(&[&keys, &values])?;
                *cross = CrossKv { keys, values };
            }
        }
        self.selves.iter_mut().try_for_each(|c| c.select(&rows))
    }

    /// Hypotheses in the self-attention caches (`None` before the first token).
    pub fn batch(&self) -> Option<usize> {
        self.selves.first()?.batch().map(|b| b as usize)
    }
}

impl TextDecoder {
    pub fn load(w: &Weights, c: &WhisperDims) -> Result<TextDecoder, WeightError> {
        let n = c.n_text_state;
        let blocks = (0..c.n_text_layer)
            .map(|i| {
                let prefix = format!("decoder.blocks.{i}");
                let mut block = ResidualAttentionBlock::load(w, &prefix, n, c.n_text_head, true)?;
                // Decoding reads every step weight once per token: f16
                // storage halves those bytes where it loses nothing.
                block.store_step_weights_f16()?;
                Ok(block)
            })
            .collect::<Result<_, WeightError>>()?;
        let token_embedding = Embedding::load(w, "decoder.token_embedding", c.n_vocab, n)?;
        // A quantized model is approximate already: its cross-attention
        // keys and values, read in full at every token, are kept in f16 too
        // (half the bytes). Float models keep f32 and their exact outputs.
        let cross_kv = match token_embedding.weight {
            Matrix::Quantized(_) => Dtype::F16,
            Matrix::Dense(_) => Dtype::F32,
        };
        Ok(TextDecoder {
            token_embedding,
            positional_embedding: w
                .get_shaped("decoder.positional_embedding", &[c.n_text_ctx, n])?,
            blocks,
            ln: LayerNorm::load(w, "decoder.ln", n)?,
            cross_kv,
        })
    }

    /// Whether all of a window's products (the cross-attention keys and
    /// values, the prompt pass) run on the mlx crate's kernel pool, with
    /// none on OpenBLAS's threads.
    pub fn multiplies_on_kernel_pool(&self) -> bool {
        self.blocks
            .iter()
            .all(ResidualAttentionBlock::multiplies_on_kernel_pool)
    }

    /// Starts a window: projects the encoder output once for every layer.
    pub fn start(&self, audio: &Array) -> mlx::Result<DecoderState> {
        let cross = self
            .blocks
            .iter()
            .map(|b| {
                b.cross_attn
                    .as_ref()
                    .expect("decoder blocks have cross-attention")
                    .0
                    .project_kv(audio, self.cross_kv)
            })
            .collect::<mlx::Result<_>>()?;
        Ok(DecoderState {
            cross,
            selves: vec![KvCache::default(); self.blocks.len()],
            offset: 0,
        })
    }

    /// Logits `[B, L, n_vocab]` for `tokens` `[B, L]` following what `state` has seen.
    pub fn forward(&self, tokens: &Array, state: &mut DecoderState) -> mlx::Result<Array> {
        self.logits(&self.hidden(tokens, state)?)
    }

    /// Logits over the vocabulary for final hidden states `[.., D]`.
    pub fn logits(&self, hidden: &Array) -> mlx::Result<Array> {
        self.token_embedding.as_linear(hidden)
    }

    /// Final (normalized) hidden states `[B, L, D]` for `tokens` `[B, L]`;
    /// callers project only the positions they need with [`Self::logits`].
    pub fn hidden(&self, tokens: &Array, state: &mut DecoderState) -> mlx::Result<Array> {
        self.hidden_capturing(tokens, state, None)
    }

    /// Logits `[B, L, n_vocab]` and each layer's cross-attention logits
    /// `[B, H, L, n_audio_ctx]` for `tokens`.
    pub fn forward_with_cross_logits(
        &self,
        tokens: &Array,
        state: &mut DecoderState,
    ) -> mlx::Result<(Array, Vec<Array>)> {
        let mut captured = vec![None; self.blocks.len()];
        let hidden = self.hidden_capturing(tokens, state, Some(&mut captured))?;
        let layers = captured
            .into_iter()
            .map(|c| c.ok_or_else(|| mlx::Error::Mlx("no cross-attention logits".into())))
            .collect::<mlx::Result<_>>()?;
        Ok((self.logits(&hidden)?, layers))
    }

    fn hidden_capturing(
        &self,
        tokens: &Array,
        state: &mut DecoderState,
        mut captured: Option<&mut Vec<Option<Array>>>,
    ) -> mlx::Result<Array> {
        let len = tokens.dim(1)?;
        let ctx = self.positional_embedding.dim(0)?;
        if state.offset + len > ctx {
            return Err(mlx::Error::Mlx(format!(
                "decoder context is {ctx} tokens, asked for {}",
                state.offset + len
            )));
        }
        let positions =
            self.positional_embedding
                .slice_axis(0, state.offset, state.offset + len)?;
        let mut x = self.token_embedding.forward(tokens)?.add(&positions)?;
        let fused = match captured {
            None if len == 1 => self.fused_steps(state, tokens.dim(0)?),
            _ => None,
        };
        if let Some(steps) = fused {
            for ((step, cache), cross) in steps.iter().zip(&mut state.selves).zip(&state.cross) {
                x = cache.step(|keys, values, position| {
                    let out = step.step(&x, keys, values, position, &cross.keys, &cross.values)?;
                    Ok((out.x, out.keys, out.values))
                })?;
            }
        } else {
            let layers = self.blocks.iter().zip(&mut state.selves).zip(&state.cross);
            for (i, ((block, cache), cross)) in layers.enumerate() {
                let capture = captured.as_deref_mut().map(|c| &mut c[i]);
                x = block.forward_capturing(&x, Some(cache), Some(cross), capture)?;
            }
        }
        state.offset += len;
        self.ln.forward(&x)
    }

    /// Every block as one fused step each, where that runs (the CPU kernels,
    /// at most 8 rows, caches holding a prompt): the same values as the
    /// blocks' ops, without ~30 dispatches per block and token.
    fn fused_steps(&self, state: &DecoderState, rows: i32) -> Option<Vec<DecoderLayerWeights<'_>>> {
        let fits = rows <= mlx::decoder_step::DECODER_STEP_MAX_ROWS;
        if !mlx::decoder_step::decoder_layer_steps_available() || !fits || state.batch().is_none() {
            return None;
        }
        self.blocks.iter().map(|b| b.step_weights()).collect()
    }
}
