//! Multi-head attention and the pre-LN residual block Whisper stacks.

use mlx::fast::{scaled_dot_product_attention, AttentionMask};
use mlx::{Array, Dtype};

use crate::nn::{LayerNorm, Linear};
use crate::weights::{WeightError, Weights};

/// Keys and values already computed for a decoder layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub keys: Option<Array>,
    pub values: Option<Array>,
}

impl KvCache {
    /// The cache with keys and values converted to `dtype`.
    pub fn astype(self, dtype: Dtype) -> mlx::Result<KvCache> {
        let convert = |a: Option<Array>| a.map(|a| a.astype(dtype)).transpose();
        Ok(KvCache {
            keys: convert(self.keys)?,
            values: convert(self.values)?,
        })
    }

    /// Keeps the batch rows `rows` (`[N]` int32), in that order: repeats a
    /// prompt's cache for each hypothesis, or follows the beams' sources.
    pub fn select(&mut self, rows: &Array) -> mlx::Result<()> {
        for a in [&mut self.keys, &mut self.values].into_iter().flatten() {
            *a = a.take(rows, 0)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct MultiHeadAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    n_head: i32,
}

impl MultiHeadAttention {
    pub fn load(w: &Weights, prefix: &str, n_state: i32, n_head: i32) -> Result<Self, WeightError> {
        Ok(MultiHeadAttention {
            query: Linear::load(w, &format!("{prefix}.query"), n_state, n_state, true)?,
            key: Linear::load(w, &format!("{prefix}.key"), n_state, n_state, false)?,
            value: Linear::load(w, &format!("{prefix}.value"), n_state, n_state, true)?,
            out: Linear::load(w, &format!("{prefix}.out"), n_state, n_state, true)?,
            n_head,
        })
    }

    /// Stores the projections applied to each decoded token in f16 where
    /// exact; with `keys_values` false the key and value projections (of
    /// the encoder output, once per window) stay as they are.
    pub fn store_step_weights_f16(&mut self, keys_values: bool) -> mlx::Result<()> {
        self.query.store_f16_when_exact()?;
        self.out.store_f16_when_exact()?;
        if keys_values {
            self.key.store_f16_when_exact()?;
            self.value.store_f16_when_exact()?;
        }
        Ok(())
    }

    /// `[B, L, D]` → `[B, H, L, D / H]`.
    fn split_heads(&self, x: &Array) -> mlx::Result<Array> {
        let (b, l, d) = (x.dim(0)?, x.dim(1)?, x.dim(2)?);
        x.reshape(&[b, l, self.n_head, d / self.n_head])?
            .transpose(&[0, 2, 1, 3])
    }

    /// Keys and values of `source` (the encoder output, for cross-attention),
    /// laid out head by head in memory: they are read at every decoder
    /// step, and a strided view would be copied by each of those reads.
    pub fn project_kv(&self, source: &Array) -> mlx::Result<KvCache> {
        let packed = |x: &Array| -> mlx::Result<Array> {
            let heads = self.split_heads(x)?;
            // Flattening a transposed view materializes it row-major.
            heads.reshape(&[-1])?.reshape(&heads.shape())
        };
        Ok(KvCache {
            keys: Some(packed(&self.key.forward(source)?)?),
            values: Some(packed(&self.value.forward(source)?)?),
        })
    }

    /// Self-attention over `x`, appending this step's keys and values to `cache`.
    pub fn self_attend(
        &self,
        x: &Array,
        cache: Option<&mut KvCache>,
        causal: bool,
    ) -> mlx::Result<Array> {
        let mut k = self.split_heads(&self.key.forward(x)?)?;
        let mut v = self.split_heads(&self.value.forward(x)?)?;
        if let Some(cache) = cache {
            if let (Some(pk), Some(pv)) = (&cache.keys, &cache.values) {
                k = mlx::concatenate(&[pk, &k], 2)?;
                v = mlx::concatenate(&[pv, &v], 2)?;
            }
            cache.keys = Some(k.clone());
            cache.values = Some(v.clone());
        }
        let mask = if causal && x.dim(1)? > 1 {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        };
        self.attend(x, &k, &v, mask)
    }

    /// Scaled attention logits `q kᵀ / √d` of `x`'s queries over `k`,
    /// `[B, H, L, S]` (what alignment reads off the cross-attention).
    pub fn logits(&self, x: &Array, k: &Array) -> mlx::Result<Array> {
        let q = self.split_heads(&self.query.forward(x)?)?;
        let scale = f64::from(q.dim(3)?).powf(-0.5);
        q.mul_scalar(scale)?.matmul(&k.transpose(&[0, 1, 3, 2])?)
    }

    /// Attention of `x`'s queries over given keys and values.
    pub fn attend(
        &self,
        x: &Array,
        k: &Array,
        v: &Array,
        mask: AttentionMask<'_>,
    ) -> mlx::Result<Array> {
        let q = self.split_heads(&self.query.forward(x)?)?;
        let head_dim = q.dim(3)?;
        let scale = (head_dim as f32).powf(-0.5);
        let (b, l) = (x.dim(0)?, x.dim(1)?);
        // Hypotheses of one window (beam search, best-of) share the
        // encoder's keys: fold them into the query length so every head
        // runs one attention instead of one per hypothesis.
        let o = if b > 1 && k.dim(0)? == 1 && matches!(mask, AttentionMask::None) {
            let folded = q
                .transpose(&[1, 0, 2, 3])?
                .reshape(&[1, self.n_head, b * l, head_dim])?;
            scaled_dot_product_attention(&folded, k, v, scale, mask)?
                .reshape(&[self.n_head, b, l, head_dim])?
                .transpose(&[1, 0, 2, 3])?
        } else {
            scaled_dot_product_attention(&q, k, v, scale, mask)?
        };
        self.out
            .forward(&o.transpose(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?)
    }
}

/// Pre-LN block: self-attention, optional cross-attention, then the MLP.
#[derive(Debug, Clone)]
pub struct ResidualAttentionBlock {
    pub attn: MultiHeadAttention,
    attn_ln: LayerNorm,
    pub cross_attn: Option<(MultiHeadAttention, LayerNorm)>,
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
                MultiHeadAttention::load(w, &format!("{prefix}.cross_attn"), n_state, n_head)?,
                LayerNorm::load(w, &format!("{prefix}.cross_attn_ln"), n_state)?,
            ))
        } else {
            None
        };
        Ok(ResidualAttentionBlock {
            attn: MultiHeadAttention::load(w, &format!("{prefix}.attn"), n_state, n_head)?,
            attn_ln: LayerNorm::load(w, &format!("{prefix}.attn_ln"), n_state)?,
            cross_attn,
            mlp1: Linear::load(w, &format!("{prefix}.mlp1"), n_state, 4 * n_state, true)?,
            mlp2: Linear::load(w, &format!("{prefix}.mlp2"), 4 * n_state, n_state, true)?,
            mlp_ln: LayerNorm::load(w, &format!("{prefix}.mlp_ln"), n_state)?,
        })
    }

    /// Stores the weights a decoder block applies to each token in f16
    /// where exact (see [`Linear::store_f16_when_exact`]).
    pub fn store_step_weights_f16(&mut self) -> mlx::Result<()> {
        self.attn.store_step_weights_f16(true)?;
        if let Some((cross, _)) = &mut self.cross_attn {
            cross.store_step_weights_f16(false)?;
        }
        self.mlp1.store_f16_when_exact()?;
        self.mlp2.store_f16_when_exact()
    }

    /// `cache`: this layer's self-attention cache; `cross`: the keys and values
    /// of the encoder output (decoder blocks only).
    pub fn forward(
        &self,
        x: &Array,
        cache: Option<&mut KvCache>,
        cross: Option<&KvCache>,
    ) -> mlx::Result<Array> {
        self.forward_capturing(x, cache, cross, None)
    }

    /// [`Self::forward`] that also stores the cross-attention logits in
    /// `cross_logits` (decoder blocks).
    pub fn forward_capturing(
        &self,
        x: &Array,
        cache: Option<&mut KvCache>,
        cross: Option<&KvCache>,
        cross_logits: Option<&mut Option<Array>>,
    ) -> mlx::Result<Array> {
        let causal = self.cross_attn.is_some();
        let mut x = x.add(
            &self
                .attn
                .self_attend(&self.attn_ln.forward(x)?, cache, causal)?,
        )?;
        if let (Some((attn, ln)), Some(kv)) = (&self.cross_attn, cross) {
            let (k, v) = (kv.keys.as_ref(), kv.values.as_ref());
            let (Some(k), Some(v)) = (k, v) else {
                return Err(mlx::Error::Mlx("cross-attention cache is empty".into()));
            };
            let queries = ln.forward(&x)?;
            if let Some(out) = cross_logits {
                *out = Some(attn.logits(&queries, k)?);
            }
            x = x.add(&attn.attend(&queries, k, v, AttentionMask::None)?)?;
        }
        let h = self
            .mlp2
            .forward(&self.mlp1.forward(&self.mlp_ln.forward(&x)?)?.gelu()?)?;
        x.add(&h)
    }
}
