//! Multi-head attention and the pre-LN residual block Whisper stacks.

use mlx::decoder_step::{DecoderLayerWeights, StepMatrix, StepProjection};
use mlx::fast::{scaled_dot_product_attention, AttentionMask};
use mlx::{Array, Dtype};

use crate::nn::{merge_heads, split_heads, LayerNorm, Linear, Matrix};
use crate::weights::{WeightError, Weights};

/// The keys and values of the encoder output for one decoder layer's
/// cross-attention, `[1, H, frames, D / H]`, computed once per window.
#[derive(Debug, Clone)]
pub struct CrossKv {
    pub keys: Array,
    pub values: Array,
}

/// The keys and values a decoder layer's self-attention has seen, in buffers
/// `[B, H, capacity, D / H]` of which the first `len` positions are filled.
/// Appending writes into the buffer in place (MLX reuses an input buffer
/// nothing else holds), where concatenating copied the whole cache per token.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    buffers: Option<(Array, Array)>,
    len: i32,
}

impl KvCache {
    /// Appends `keys` and `values` (`[B, H, L, D / H]`) and returns every
    /// position so far, as views of the buffers.
    pub fn append(&mut self, keys: &Array, values: &Array) -> mlx::Result<(Array, Array)> {
        let end = self.len + keys.dim(2)?;
        let (k, v) = match self.take_with_room(end)? {
            Some(buffers) => buffers,
            None => (empty(keys, end)?, empty(values, end)?),
        };
        let write = |buffer: &Array, new: &Array| {
            let mut stop = buffer.shape();
            stop[2] = end;
            buffer.slice_update(new, &[0, 0, self.len, 0], &stop, &[1, 1, 1, 1])
        };
        let (k, v) = (write(&k, keys)?, write(&v, values)?);
        self.len = end;
        let filled = (k.slice_axis(2, 0, end)?, v.slice_axis(2, 0, end)?);
        self.buffers = Some((k, v));
        Ok(filled)
    }

    /// Keeps the batch rows `rows`, in that order: repeats a prompt's cache
    /// for each hypothesis, or follows the beams' sources (copying only the
    /// filled positions).
    pub fn select(&mut self, rows: &[i32]) -> mlx::Result<()> {
        if let Some((k, v)) = &mut self.buffers {
            *k = mlx::kernels::select_rows(k, rows, self.len)?;
            *v = mlx::kernels::select_rows(v, rows, self.len)?;
            // Evaluated now, the new buffers are the cache's alone, and the
            // next step writes into them in place; left lazy, the step's
            // graph still held them and it copied them once more.
            mlx::eval(&[&*k, &*v])?;
        }
        Ok(())
    }

    /// Runs `step` on the buffers with room for one more position (taken out
    /// of the cache, so that nothing else holds them and the step writes
    /// them in place) and that position; keeps the buffers it returns. The
    /// cache must hold a prompt already.
    pub fn step<T>(
        &mut self,
        step: impl FnOnce(Array, Array, i32) -> mlx::Result<(T, Array, Array)>,
    ) -> mlx::Result<T> {
        let end = self.len + 1;
        let (k, v) = self
            .take_with_room(end)?
            .ok_or_else(|| mlx::Error::Mlx("a decoding step before any prompt".into()))?;
        let (out, k, v) = step(k, v, self.len)?;
        self.buffers = Some((k, v));
        self.len = end;
        Ok(out)
    }

    /// The buffers taken out of the cache, grown to hold `end` positions;
    /// `None` before the first append.
    fn take_with_room(&mut self, end: i32) -> mlx::Result<Option<(Array, Array)>> {
        Ok(match self.buffers.take() {
            Some((k, v)) if k.dim(2)? >= end => Some((k, v)),
            Some((k, v)) => Some((grow(&k, end)?, grow(&v, end)?)),
            None => None,
        })
    }

    /// Hypotheses in the cache (`None` before the first token).
    pub fn batch(&self) -> Option<i32> {
        self.buffers.as_ref().and_then(|(k, _)| k.dim(0).ok())
    }
}

/// Room for `needed` positions, at least doubling: a window's few growths
/// copy less than one concatenation per token did.
fn capacity(needed: i32) -> i32 {
    (needed.max(64) as u32).next_power_of_two() as i32
}

fn empty(like: &Array, needed: i32) -> mlx::Result<Array> {
    let mut shape = like.shape();
    shape[2] = capacity(needed);
    Array::zeros(&shape, like.dtype())
}

fn grow(buffer: &Array, needed: i32) -> mlx::Result<Array> {
    let extra = capacity(needed) - buffer.dim(2)?;
    buffer.pad(&[2], &[0], &[extra], 0.0)
}

/// `residual + out(attention(q, k, v))` for `[B, H, L, D / H]` queries.
fn attend(
    q: &Array,
    k: &Array,
    v: &Array,
    mask: AttentionMask<'_>,
    out: &Linear,
    residual: &Array,
) -> mlx::Result<Array> {
    let (b, n_head, l, head_dim) = (q.dim(0)?, q.dim(1)?, q.dim(2)?, q.dim(3)?);
    let scale = (head_dim as f32).powf(-0.5);
    // Hypotheses of one window (beam search, best-of) share the encoder's
    // keys: fold them into the query length so every head runs one
    // attention instead of one per hypothesis.
    let o = if b > 1 && k.dim(0)? == 1 && matches!(mask, AttentionMask::None) {
        let folded = q
            .transpose(&[1, 0, 2, 3])?
            .reshape(&[1, n_head, b * l, head_dim])?;
        scaled_dot_product_attention(&folded, k, v, scale, mask)?
            .reshape(&[n_head, b, l, head_dim])?
            .transpose(&[1, 0, 2, 3])?
    } else {
        scaled_dot_product_attention(q, k, v, scale, mask)?
    };
    let merged = merge_heads(&o)?;
    out.forward_residual(&merged, residual)
}

/// One of an attention layer's `[n_state, n_state]` projections.
fn projection(
    w: &Weights,
    prefix: &str,
    name: &str,
    n_state: i32,
    bias: bool,
) -> Result<Linear, WeightError> {
    Linear::load(w, &format!("{prefix}.{name}"), n_state, n_state, bias)
}

/// Self-attention: queries, keys and values projected from the same input
/// by one stacked `[3 D, D]` matrix (one product instead of three).
#[derive(Debug, Clone)]
pub struct SelfAttention {
    qkv: Linear,
    out: Linear,
    n_head: i32,
}

impl SelfAttention {
    pub fn load(w: &Weights, prefix: &str, n_state: i32, n_head: i32) -> Result<Self, WeightError> {
        let part = |name: &str, bias: bool| projection(w, prefix, name, n_state, bias);
        let qkv = Linear::stack(&[
            part("query", true)?,
            part("key", false)?,
            part("value", true)?,
        ])?;
        Ok(SelfAttention {
            qkv,
            out: part("out", true)?,
            n_head,
        })
    }

    /// Stores the weights in f16 where exact (decoder: read once per token).
    pub fn store_f16_when_exact(&mut self) -> mlx::Result<()> {
        self.qkv.store_f16_when_exact()?;
        self.out.store_f16_when_exact()
    }

    /// `residual + attention of x over itself` (and over what `cache` holds,
    /// to which this step's keys and values are appended).
    pub fn forward(
        &self,
        x: &Array,
        residual: &Array,
        cache: Option<&mut KvCache>,
        causal: bool,
    ) -> mlx::Result<Array> {
        let qkv = self.qkv.forward(x)?;
        let d = qkv.dim(2)? / 3;
        let part = |i: i32| split_heads(&qkv.slice_axis(2, i * d, (i + 1) * d)?, self.n_head);
        let (q, mut k, mut v) = (part(0)?, part(1)?, part(2)?);
        if let Some(cache) = cache {
            (k, v) = cache.append(&k, &v)?;
        }
        let mask = if causal && x.dim(1)? > 1 {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        };
        attend(&q, &k, &v, mask, &self.out, residual)
    }
}

/// Cross-attention: queries from the text, keys and values from the audio.
#[derive(Debug, Clone)]
pub struct CrossAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    n_head: i32,
}

impl CrossAttention {
    pub fn load(w: &Weights, prefix: &str, n_state: i32, n_head: i32) -> Result<Self, WeightError> {
        let part = |name: &str, bias: bool| projection(w, prefix, name, n_state, bias);
        Ok(CrossAttention {
            query: part("query", true)?,
            key: part("key", false)?,
            value: part("value", true)?,
            out: part("out", true)?,
            n_head,
        })
    }

    /// Stores the projections applied to each decoded token in f16 where
    /// exact; the key and value projections (of the encoder output, once
    /// per window) stay as they are.
    pub fn store_step_weights_f16(&mut self) -> mlx::Result<()> {
        self.query.store_f16_when_exact()?;
        self.out.store_f16_when_exact()
    }

    /// Keys and values of `source` (the encoder output) as `dtype`, laid out
    /// head by head in memory: they are read at every decoder step, and a
    /// strided view would be copied by each of those reads. Evaluated one
    /// after the other, so that a batch of windows' f32 projections are not
    /// all alive at once.
    pub fn project_kv(&self, source: &Array, dtype: Dtype) -> mlx::Result<CrossKv> {
        let packed = |x: &Array| -> mlx::Result<Array> {
            // Row-major: the attention kernels read each head's keys and
            // values as one contiguous block.
            let out = mlx::kernels::row_major(&split_heads(x, self.n_head)?, dtype)?;
            out.eval()?;
            Ok(out)
        };
        Ok(CrossKv {
            keys: packed(&self.key.forward(source)?)?,
            values: packed(&self.value.forward(source)?)?,
        })
    }

    fn queries(&self, x: &Array) -> mlx::Result<Array> {
        split_heads(&self.query.forward(x)?, self.n_head)
    }

    /// Scaled attention logits `q kᵀ / √d` of `x`'s queries over the audio,
    /// `[B, H, L, frames]` (what alignment reads).
    pub fn logits(&self, x: &Array, kv: &CrossKv) -> mlx::Result<Array> {
        let q = self.queries(x)?;
        let scale = f64::from(q.dim(3)?).powf(-0.5);
        q.mul_scalar(scale)?
            .matmul(&kv.keys.transpose(&[0, 1, 3, 2])?)
    }

    /// `residual + attention of x's queries over the audio`.
    pub fn forward(&self, x: &Array, residual: &Array, kv: &CrossKv) -> mlx::Result<Array> {
        let q = self.queries(x)?;
        attend(
            &q,
            &kv.keys,
            &kv.values,
            AttentionMask::None,
            &self.out,
            residual,
        )
    }
}

/// A biased projection as a fused step takes it.
fn step_projection(l: &Linear) -> Option<StepProjection<'_>> {
    let matrix = match &l.weight {
        Matrix::Dense(m) => StepMatrix::Dense(m),
        Matrix::Quantized(q) => StepMatrix::Quantized(q),
    };
    Some(StepProjection {
        matrix,
        bias: l.bias.as_ref()?,
    })
}

/// Pre-LN block: self-attention, optional cross-attention, then the MLP.
#[derive(Debug, Clone)]
pub struct ResidualAttentionBlock {
    attn: SelfAttention,
    attn_ln: LayerNorm,
    pub cross_attn: Option<(CrossAttention, LayerNorm)>,
    mlp1: Linear,
    mlp2: Linear,
    mlp_ln: LayerNorm,
}

impl ResidualAttentionBlock {
    pub fn load(
        w: &Weights,
        prefix: &str,
        n_state: i32,
        n_head: i32,
        cross: bool,
    ) -> Result<Self, WeightError> {
        let cross_attn = if cross {
            Some((
                CrossAttention::load(w, &format!("{prefix}.cross_attn"), n_state, n_head)?,
                LayerNorm::load(w, &format!("{prefix}.cross_attn_ln"), n_state)?,
            ))
        } else {
            None
        };
        Ok(ResidualAttentionBlock {
            attn: SelfAttention::load(w, &format!("{prefix}.attn"), n_state, n_head)?,
            attn_ln: LayerNorm::load(w, &format!("{prefix}.attn_ln"), n_state)?,
            cross_attn,
            mlp1: Linear::load(w, &format!("{prefix}.mlp1"), n_state, 4 * n_state, true)?,
            mlp2: Linear::load(w, &format!("{prefix}.mlp2"), 4 * n_state, n_state, true)?,
            mlp_ln: LayerNorm::load(w, &format!("{prefix}.mlp_ln"), n_state)?,
        })
    }

    /// Whether every projection of the block multiplies on the mlx crate's
    /// kernel pool (see [`Matrix::multiplies_on_kernel_pool`]).
    pub fn multiplies_on_kernel_pool(&self) -> bool {
        let mut linears = vec![&self.attn.qkv, &self.attn.out, &self.mlp1, &self.mlp2];
        if let Some((cross, _)) = &self.cross_attn {
            linears.extend([&cross.query, &cross.key, &cross.value, &cross.out]);
        }
        linears.iter().all(|l| l.weight.multiplies_on_kernel_pool())
    }

    /// Stores the weights a decoder block applies to each token in f16
    /// where exact (see [`Linear::store_f16_when_exact`]).
    pub fn store_step_weights_f16(&mut self) -> mlx::Result<()> {
        self.attn.store_f16_when_exact()?;
        if let Some((cross, _)) = &mut self.cross_attn {
            cross.store_step_weights_f16()?;
        }
        self.mlp1.store_f16_when_exact()?;
        self.mlp2.store_f16_when_exact()
    }

    /// The block as one fused decoding step's weights: a decoder block whose
    /// projections are all biased (the stacked query/key/value's missing key
    /// bias is zeros); `None` otherwise.
    pub fn step_weights(&self) -> Option<DecoderLayerWeights<'_>> {
        let (cross, cross_ln) = self.cross_attn.as_ref()?;
        let norms = [&self.attn_ln, cross_ln, &self.mlp_ln];
        if norms.iter().any(|n| n.eps != self.attn_ln.eps) {
            return None;
        }
        Some(DecoderLayerWeights {
            heads: self.attn.n_head,
            eps: self.attn_ln.eps,
            norms: norms.map(|n| (&n.weight, &n.bias)),
            projections: [
                step_projection(&self.attn.qkv)?,
                step_projection(&self.attn.out)?,
                step_projection(&cross.query)?,
                step_projection(&cross.out)?,
                step_projection(&self.mlp1)?,
                step_projection(&self.mlp2)?,
            ],
        })
    }

    /// `cache`: this layer's self-attention cache; `cross`: the keys and values
    /// of the encoder output (decoder blocks only).
    pub fn forward(
        &self,
        x: &Array,
        cache: Option<&mut KvCache>,
        cross: Option<&CrossKv>,
    ) -> mlx::Result<Array> {
        self.forward_capturing(x, cache, cross, None)
    }

    /// [`Self::forward`] that also stores the cross-attention logits in
    /// `cross_logits` (decoder blocks).
    pub fn forward_capturing(
        &self,
        x: &Array,
        cache: Option<&mut KvCache>,
        cross: Option<&CrossKv>,
        cross_logits: Option<&mut Option<Array>>,
    ) -> mlx::Result<Array> {
        let causal = self.cross_attn.is_some();
        let mut x = self
            .attn
            .forward(&self.attn_ln.forward(x)?, x, cache, causal)?;
        if let (Some((attn, ln)), Some(kv)) = (&self.cross_attn, cross) {
            let queries = ln.forward(&x)?;
            if let Some(out) = cross_logits {
                *out = Some(attn.logits(&queries, kv)?);
            }
            x = attn.forward(&queries, &x, kv)?;
        }
        let hidden = self.mlp1.forward_gelu(&self.mlp_ln.forward(&x)?)?;
        self.mlp2.forward_residual(&hidden, &x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: &[i32], start: f32) -> Array {
        let n: i32 = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| start + i as f32).collect();
        Array::from_slice(&values, shape).unwrap()
    }

    #[test]
    fn cache_in_place_equals_concatenation_across_growth_and_selection() {
        let mut cache = KvCache::default();
        let mut keys: Option<Array> = None;
        let mut values: Option<Array> = None;
        // A prompt of 50, then single tokens past the 64 and 128 capacities.
        let lengths = std::iter::once(50).chain(std::iter::repeat_n(1, 90));
        for (step, len) in lengths.enumerate() {
            let k = ramp(&[2, 3, len, 4], step as f32 * 1000.0);
            let v = ramp(&[2, 3, len, 4], -(step as f32) * 1000.0);
            let (got_k, got_v) = cache.append(&k, &v).unwrap();
            let join = |all: Option<Array>, new: &Array| match all {
                Some(a) => mlx::concatenate(&[&a, new], 2).unwrap(),
                None => new.clone(),
            };
            keys = Some(join(keys, &k));
            values = Some(join(values, &v));
            let (want_k, want_v) = (keys.as_ref().unwrap(), values.as_ref().unwrap());
            assert_eq!(got_k.shape(), want_k.shape(), "step {step}");
            assert_eq!(
                got_k.to_vec::<f32>().unwrap(),
                want_k.to_vec::<f32>().unwrap()
            );
            assert_eq!(
                got_v.to_vec::<f32>().unwrap(),
                want_v.to_vec::<f32>().unwrap()
            );
        }
        // Beams: rows repeated and reordered, then appended to again.
        cache.select(&[1, 0, 1]).unwrap();
        let rows = Array::from_slice(&[1i32, 0, 1], &[3]).unwrap();
        assert_eq!(cache.batch(), Some(3));
        let k = ramp(&[3, 3, 1, 4], 5.0e5);
        let (got_k, _) = cache.append(&k, &k).unwrap();
        let want = mlx::concatenate(&[&keys.unwrap().take(&rows, 0).unwrap(), &k], 2).unwrap();
        assert_eq!(
            got_k.to_vec::<f32>().unwrap(),
            want.to_vec::<f32>().unwrap()
        );
    }
}
