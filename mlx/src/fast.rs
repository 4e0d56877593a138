//! MLX's fused kernels (`mlx::core::fast`).

use std::ptr;

use crate::array::{from_array_vec, to_array_vec};
use crate::ffi::ffi;
use crate::quant::QuantizedMatrix;
use crate::{Array, Dtype, Error, Result};

pub(crate) fn ptr_of(a: Option<&Array>) -> *const ffi::MlxArray {
    a.map_or(ptr::null(), |a| a.raw() as *const _)
}

/// Layer normalization over the last axis, with optional affine parameters.
pub fn layer_norm(
    x: &Array,
    weight: Option<&Array>,
    bias: Option<&Array>,
    eps: f32,
) -> Result<Array> {
    // SAFETY: the pointers are null or borrowed from live arrays for the call.
    let raw = unsafe { ffi::layer_norm(x.raw(), ptr_of(weight), ptr_of(bias), eps)? };
    Ok(Array::from_raw(raw))
}

/// RMS normalization over the last axis.
pub fn rms_norm(x: &Array, weight: Option<&Array>, eps: f32) -> Result<Array> {
    // SAFETY: as in `layer_norm`.
    let raw = unsafe { ffi::rms_norm(x.raw(), ptr_of(weight), eps)? };
    Ok(Array::from_raw(raw))
}

/// Rotary position embedding on the first `dims` features of the last axis,
/// positions starting at `offset`. `traditional` rotates adjacent pairs
/// instead of the two halves.
pub fn rope(
    x: &Array,
    dims: i32,
    traditional: bool,
    base: f32,
    scale: f32,
    offset: i32,
) -> Result<Array> {
    Ok(Array::from_raw(ffi::rope(
        x.raw(),
        dims,
        traditional,
        base,
        scale,
        offset,
    )?))
}

/// What a linear layer applies to `x wᵀ`, in this order: adds `bias`
/// (`[out]`), applies GELU (the exact, erf form), adds `residual` (the
/// output's shape). Each part is optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinearEpilogue<'a> {
    pub bias: Option<&'a Array>,
    pub gelu: bool,
    pub residual: Option<&'a Array>,
}

/// `x wᵀ` for a weight `[out, in]`, then `epilogue`. On the CPU with few
/// rows (decoding) the epilogue runs inside the matmul kernel: one op and
/// one pass over the output instead of up to four; otherwise it is MLX's
/// ops, with the same values.
pub fn linear(x: &Array, weight: &Array, epilogue: LinearEpilogue<'_>) -> Result<Array> {
    // SAFETY: the pointers are null or borrowed from live arrays for the call.
    let raw = unsafe {
        ffi::linear(
            x.raw(),
            weight.raw(),
            ptr_of(epilogue.bias),
            epilogue.gelu,
            ptr_of(epilogue.residual),
        )?
    };
    Ok(Array::from_raw(raw))
}

/// The mask applied inside [`scaled_dot_product_attention`].
#[derive(Clone, Copy, Debug)]
pub enum AttentionMask<'a> {
    None,
    /// Query i attends to keys `..= i + (keys - queries)`.
    Causal,
    /// Additive (float) or boolean mask broadcastable to `[B, H, Lq, Lk]`.
    Array(&'a Array),
}

/// `softmax(scale * q kᵀ + mask) v` for `[B, H, L, D]` inputs; keys and
/// values may have fewer heads than queries (grouped-query attention).
pub fn scaled_dot_product_attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    mask: AttentionMask<'_>,
) -> Result<Array> {
    let (mode, mask_array) = match mask {
        AttentionMask::None => ("", None),
        AttentionMask::Causal => ("causal", None),
        AttentionMask::Array(a) => ("array", Some(a)),
    };
    // SAFETY: as in `layer_norm`.
    let raw = unsafe { ffi::sdpa(q.raw(), k.raw(), v.raw(), scale, mode, ptr_of(mask_array))? };
    Ok(Array::from_raw(raw))
}

/// Turns this crate's own CPU kernels on or off and returns the previous
/// setting. On the CPU backend, f32 [`Array::softmax`] over the last axis,
/// [`Array::gelu`], [`layer_norm`] and [`scaled_dot_product_attention`]
/// without an array mask run as vectorized, multi-threaded primitives of this
/// crate; switched off (or with `MLX_ASR_CUSTOM_KERNELS=0` in the
/// environment at start-up), and on GPU backends, they are MLX's own ops.
/// Affects arrays built afterwards.
pub fn set_custom_kernels(on: bool) -> bool {
    ffi::set_custom_kernels(on)
}

/// Whether this crate's CPU kernels are in use (see [`set_custom_kernels`]).
pub fn custom_kernels() -> bool {
    ffi::custom_kernels()
}

/// `a` (f32) in f16 when every value is exactly an f16 value, so that f16
/// storage changes nothing; otherwise `a` as it is. Evaluates `a`.
pub fn f16_if_exact(a: &Array) -> Result<Array> {
    Ok(Array::from_raw(ffi::f16_if_exact(a.raw())?))
}

/// A row-major copy of `a` as `dtype` (for example the heads of a transposed
/// view, converted to f16): on the CPU backend, for f32 `a` of up to four
/// axes and an f32 or f16 result, one multi-threaded pass of this crate's
/// kernels (f16 rounded to nearest, ties to even, as [`Array::astype`]);
/// otherwise MLX's conversion and copy.
pub fn row_major(a: &Array, dtype: Dtype) -> Result<Array> {
    Ok(Array::from_raw(ffi::row_major(a.raw(), dtype as u8)?))
}

/// Rows `rows` of a `[B, H, C, D]` cache (hypotheses × heads × capacity ×
/// head width) as `[rows.len(), H, C, D]`, of which only the first `filled`
/// positions of axis 2 are defined: on the CPU backend one multi-threaded
/// copy of just those positions; otherwise MLX's `take` (all of them). For
/// caches that write every later position before reading it. A row out of
/// range is an error.
pub fn select_rows(a: &Array, rows: &[i32], filled: i32) -> Result<Array> {
    Ok(Array::from_raw(ffi::select_rows(a.raw(), rows, filled)?))
}

/// `log Σ exp(x)` of a host buffer, with the vectorized exp of the CPU
/// kernels (within a few ulp of the exact value, summed in f64 lanes);
/// `-inf` for an empty or all `-inf` slice. A host helper, not an MLX op: the
/// decoder's token rules normalize every vocabulary row with it.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    ffi::log_sum_exp(x)
}

/// Whether quantized products with `int8_activations` run as int8 products
/// here: the custom kernels on, the CPU backend by default, and a CPU with
/// AVX-512 VNNI.
pub fn int8_products_available() -> bool {
    ffi::int8_products_available()
}

/// Threads the CPU kernels split their work over, the evaluating thread
/// included (the core count, or `MLX_ASR_THREADS`).
pub fn custom_kernel_threads() -> usize {
    ffi::custom_kernel_threads().max(1) as usize
}

/// Keeps the CPU kernels' idle worker threads spinning, instead of sleeping
/// between jobs, for as long as it lives. A sleeping worker is woken through
/// the OS, which on a virtual machine can take as long as a decoder token's
/// short jobs themselves; a decoding loop holds one so that every
/// step finds the workers awake. The spinning costs a core each while held:
/// hold it around work, not idle time. Holds nest.
#[must_use = "the threads spin only while the hold lives"]
#[derive(Debug)]
pub struct ThreadHold(());

impl ThreadHold {
    /// Opens a hold (no `Default`: making one has an effect).
    pub fn hold() -> ThreadHold {
        ffi::hold_kernel_threads();
        ThreadHold(())
    }
}

impl Drop for ThreadHold {
    fn drop(&mut self) {
        ffi::release_kernel_threads();
    }
}

/// A projection's matrix `[out, in]`: dense (f32 or f16) or quantized.
#[derive(Clone, Copy, Debug)]
pub enum StepMatrix<'a> {
    Dense(&'a Array),
    Quantized(&'a QuantizedMatrix),
}

/// A projection of a [`DecoderLayerWeights`] and its bias (`[out]`, f32).
#[derive(Clone, Copy, Debug)]
pub struct StepProjection<'a> {
    pub matrix: StepMatrix<'a>,
    pub bias: &'a Array,
}

/// A pre-LN decoder layer (Whisper's, for one): self-attention over a key/value
/// cache, cross-attention over an encoder's keys and values, a GELU MLP, each
/// after a layer norm and added to the residual stream.
#[derive(Clone, Copy, Debug)]
pub struct DecoderLayerWeights<'a> {
    pub heads: i32,
    pub eps: f32,
    /// Weight and bias of the norms before self-attention, cross-attention and the MLP.
    pub norms: [(&'a Array, &'a Array); 3],
    /// Stacked query/key/value, self-attention output, cross-attention
    /// query, cross-attention output, MLP in, MLP out; all dense, or all
    /// quantized alike.
    pub projections: [StepProjection<'a>; 6],
}

/// What [`DecoderLayerWeights::step`] returns: the layer's output and the caches.
#[derive(Debug)]
pub struct DecoderLayerStep {
    pub x: Array,
    pub keys: Array,
    pub values: Array,
}

/// Rows a [`DecoderLayerWeights::step`] takes at most (its products read
/// each matrix once for up to this many rows).
pub const DECODER_STEP_MAX_ROWS: i32 = 8;

/// Whether [`DecoderLayerWeights::step`] runs here: the custom kernels on
/// and the CPU backend by default.
pub fn decoder_layer_steps_available() -> bool {
    ffi::custom_kernels_active()
}

impl DecoderLayerWeights<'_> {
    /// The layer applied to one new position per row, `x` `[B, 1, D]` with B
    /// at most [`DECODER_STEP_MAX_ROWS`],
    /// as one primitive (the same kernels, so the same values, as the layer's
    /// ops, without ~30 dispatches). `keys` and `values`
    /// (`[B, heads, capacity, D / heads]`, f32) are the self-attention caches
    /// with positions `..position` filled; this position is written in place
    /// when nothing else holds them. `cross_keys`/`cross_values` are
    /// `[B or 1, heads, frames, D / heads]`, f16 or f32. An error when
    /// [`decoder_layer_steps_available`] is false or the shapes do not fit.
    pub fn step(
        &self,
        x: &Array,
        keys: Array,
        values: Array,
        position: i32,
        cross_keys: &Array,
        cross_values: &Array,
    ) -> Result<DecoderLayerStep> {
        let mut inputs = vec![x, &keys, &values, cross_keys, cross_values];
        inputs.extend(self.norms.iter().flat_map(|(w, b)| [*w, *b]));
        // Quantization of the first projection (0, 0 when dense); the others must match.
        let (group_size, bits) = match self.projections[0].matrix {
            StepMatrix::Quantized(q) => (q.group_size, q.bits),
            StepMatrix::Dense(_) => (0, 0),
        };
        for p in &self.projections {
            match p.matrix {
                StepMatrix::Quantized(m) if (m.group_size, m.bits) == (group_size, bits) => {
                    inputs.extend([&m.weight, &m.scales, &m.biases])
                }
                StepMatrix::Dense(m) if group_size == 0 => inputs.push(m),
                _ => {
                    return Err(Error::Mlx(
                        "decoder layer step: projections stored differently".into(),
                    ))
                }
            }
            inputs.push(p.bias);
        }
        let packed = to_array_vec(&inputs);
        // Only the primitive may hold the caches, so that it writes them in place.
        drop(inputs);
        drop((keys, values));
        let raw =
            ffi::decoder_layer_step(&packed, self.heads, position, group_size, bits, self.eps)?;
        drop(packed);
        let [x, keys, values]: [Array; 3] = from_array_vec(&raw)?.try_into().map_err(|_| {
            Error::Mlx("decoder layer step: the kernels cannot take these inputs".into())
        })?;
        Ok(DecoderLayerStep { x, keys, values })
    }
}
