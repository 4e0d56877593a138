//! Relative-position multi-head self-attention (Dai et al., 2019,
//! "Transformer-XL", §3.3), as the Conformer uses it: the score of query i
//! for key j is `(q_i + u)·k_j + (q_i + v)·p_{i-j}` with `p` a projected
//! sinusoidal embedding of the offset `i - j` and `u`, `v` learned per-head
//! biases (`pos_bias_u`, `pos_bias_v`).

use mlx::fast::{scaled_dot_product_attention, AttentionMask};
use mlx::{Array, Dtype};

use crate::nn::{merge_heads, split_heads, Linear};
use crate::parakeet::config::EncoderConfig;
use crate::weights::{WeightError, Weights};

/// The sinusoidal embeddings `[1, first - last + 1, d_model]` of the
/// offsets `first, first - 1, …, last` (query frame minus key frame): sines
/// in the even features, cosines in the odd ones, wavelengths geometric from
/// 2π to 10000·2π.
pub fn relative_positions(first: i32, last: i32, d_model: i32) -> mlx::Result<Array> {
    let count = first - last + 1;
    let offsets = Array::arange(f64::from(first), f64::from(last - 1), -1.0, Dtype::F32)?
        .expand_dims(&[1])?;
    let inverse_wavelengths = Array::arange(0.0, f64::from(d_model), 2.0, Dtype::F32)?
        .mul_scalar(-(10000f64.ln()) / f64::from(d_model))?
        .exp()?;
    let angles = offsets.multiply(&inverse_wavelengths)?;
    mlx::stack(&[&angles.sin()?, &angles.cos()?], 2)?.reshape(&[1, count, d_model])
}

/// Which keys each query attends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionSpan {
    /// Every frame (memory quadratic in the number of frames).
    Full,
    /// Frames `i - left ..= i + right` for query `i` (`"rel_pos_local_attn"`):
    /// memory linear in the number of frames.
    Local { left: i32, right: i32 },
}

impl AttentionSpan {
    /// The offsets (query minus key) whose embeddings attention over
    /// `frames` frames reads, largest first: [`relative_positions`]' range.
    pub fn offsets(self, frames: i32) -> (i32, i32) {
        match self {
            AttentionSpan::Full => (frames - 1, 1 - frames),
            AttentionSpan::Local { left, right } => (left, -right),
        }
    }
}

/// Per-offset scores `[B, H, rows, columns]` (columns: offsets, query minus
/// key, from the largest down) to per-key scores `[B, H, rows, keys]`: key c
/// of row r reads column `c - r`. Every column read must lie in its row, or
/// the rows be padded so that those outside the band read padding.
fn skew(scores: &Array, keys: i32) -> mlx::Result<Array> {
    let shape = scores.shape();
    let (batch, heads, rows, columns) = (shape[0], shape[1], shape[2], shape[3]);
    let (r, c) = (i64::from(rows), i64::from(columns));
    // One row down and one column left is the same key: stepping a row
    // moves `columns - 1` elements.
    scores.as_strided(
        &[batch, heads, rows, keys],
        &[i64::from(heads) * r * c, r * c, c - 1, 1],
        0,
    )
}

#[derive(Debug, Clone)]
pub struct RelPositionSelfAttention {
    pub linear_q: Linear,
    pub linear_k: Linear,
    pub linear_v: Linear,
    pub linear_out: Linear,
    /// Projects the position embeddings (no bias).
    pub linear_pos: Linear,
    /// `[heads, head_dim]`: the content bias `u`.
    pub pos_bias_u: Array,
    /// `[heads, head_dim]`: the position bias `v`.
    pub pos_bias_v: Array,
    pub heads: i32,
}

/// One utterance batch's queries (with each bias), keys, values and
/// projected position embeddings, heads split off: `[B, H, rows, head_dim]`.
struct Heads {
    q_u: Array,
    q_v: Array,
    k: Array,
    v: Array,
    p: Array,
    scale: f32,
}

impl RelPositionSelfAttention {
    pub fn load(
        w: &Weights,
        prefix: &str,
        c: &EncoderConfig,
    ) -> Result<RelPositionSelfAttention, WeightError> {
        let d = c.d_model;
        let linear =
            |name: &str, bias: bool| Linear::load(w, &format!("{prefix}.{name}"), d, d, bias);
        let bias =
            |name: &str| w.get_shaped(&format!("{prefix}.{name}"), &[c.n_heads, d / c.n_heads]);
        Ok(RelPositionSelfAttention {
            linear_q: linear("linear_q", c.use_bias)?,
            linear_k: linear("linear_k", c.use_bias)?,
            linear_v: linear("linear_v", c.use_bias)?,
            linear_out: linear("linear_out", c.use_bias)?,
            linear_pos: linear("linear_pos", false)?,
            pos_bias_u: bias("pos_bias_u")?,
            pos_bias_v: bias("pos_bias_v")?,
            heads: c.n_heads,
        })
    }

    /// `x` `[B, T, d]` with `positions` from [`relative_positions`] over
    /// `span.offsets(T)` → `[B, T, d]`.
    pub fn forward(&self, x: &Array, positions: &Array, span: AttentionSpan) -> mlx::Result<Array> {
        let shape = x.shape();
        let (batch, frames, width) = (shape[0], shape[1], shape[2]);
        let head_dim = width / self.heads;
        // The biases are per head, added before the heads move in front of time.
        let q = self
            .linear_q
            .forward(x)?
            .reshape(&[batch, frames, self.heads, head_dim])?;
        let heads = Heads {
            q_u: q.add(&self.pos_bias_u)?.transpose(&[0, 2, 1, 3])?,
            q_v: q.add(&self.pos_bias_v)?.transpose(&[0, 2, 1, 3])?,
            k: split_heads(&self.linear_k.forward(x)?, self.heads)?,
            v: split_heads(&self.linear_v.forward(x)?, self.heads)?,
            p: split_heads(&self.linear_pos.forward(positions)?, self.heads)?,
            scale: (head_dim as f32).powf(-0.5),
        };
        let y = match span {
            AttentionSpan::Full => heads.full()?,
            AttentionSpan::Local { left, right } => heads.local(left, right)?,
        };
        self.linear_out.forward(&merge_heads(&y)?)
    }
}

impl Heads {
    /// `softmax(scale·(q_u·k + position scores)) v` with the position scores
    /// entering as the attention's additive mask, so the content scores keep
    /// the fused attention.
    fn attend(
        &self,
        q_u: &Array,
        k: &Array,
        v: &Array,
        position_scores: &Array,
    ) -> mlx::Result<Array> {
        let mask = position_scores.mul_scalar(f64::from(self.scale))?;
        scaled_dot_product_attention(q_u, k, v, self.scale, AttentionMask::Array(&mask))
    }

    /// Every query against every key (the positions are the offsets
    /// T-1 … -(T-1)).
    fn full(&self) -> mlx::Result<Array> {
        mlx::kernels::rel_pos_attention(&self.q_u, &self.q_v, &self.k, &self.v, &self.p, self.scale)
    }

    /// Each query against the keys `left` before to `right` after it, a
    /// block of `left + right + 1` queries at a time against the keys any of
    /// them sees; keys beyond either end of the utterance are masked.
    fn local(&self, left: i32, right: i32) -> mlx::Result<Array> {
        let frames = self.k.dim(2)?;
        // Blocks as wide as the band keep each block's scores within a
        // small multiple of the band's.
        let block = left + right + 1;
        let blocks = (frames + block - 1) / block;
        let padded = blocks * block;
        let window = block + left + right;
        let pad_time = |a: &Array, before: i32, after: i32| a.pad(&[2], &[before], &[after], 0.0);
        let (q_u, q_v) = (
            pad_time(&self.q_u, 0, padded - frames)?,
            pad_time(&self.q_v, 0, padded - frames)?,
        );
        let after = padded - frames + right;
        let (k, v) = (
            pad_time(&self.k, left, after)?,
            pad_time(&self.v, left, after)?,
        );
        let dtype = self.q_u.dtype();
        let outside = |n: i32| Array::full(&[n], f64::NEG_INFINITY, dtype);
        let key_mask = mlx::concatenate(
            &[
                &outside(left)?,
                &Array::zeros(&[frames], dtype)?,
                &outside(after)?,
            ],
            0,
        )?;
        let p_t = self.p.swapaxes(-2, -1)?;
        let mut outputs = Vec::with_capacity(blocks as usize);
        for b in 0..blocks {
            let start = b * block;
            let rows = |a: &Array| a.slice_axis(2, start, start + block);
            let keys = |a: &Array| a.slice_axis(2, start, start + window);
            // Row r, key column c (frame start - left + c) is offset
            // left - (c - r): column c - r of the offsets left … -right,
            // padded so that keys out of the band read -∞.
            let by_offset =
                rows(&q_v)?
                    .matmul(&p_t)?
                    .pad(&[3], &[0], &[block], f64::NEG_INFINITY)?;
            let position_scores =
                skew(&by_offset, window)?.add(&key_mask.slice_axis(0, start, start + window)?)?;
            outputs.push(self.attend(&rows(&q_u)?, &keys(&k)?, &keys(&v)?, &position_scores)?);
        }
        let outputs: Vec<&Array> = outputs.iter().collect();
        mlx::concatenate(&outputs, 2)?.slice_axis(2, 0, frames)
    }
}
