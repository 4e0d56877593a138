//! MLX's own fused ops (`mlx::core::fast`): layer and RMS normalization,
//! rotary position embedding and scaled dot-product attention. On the CPU
//! backend some of them run as this crate's kernels (see [`crate::kernels`]).

use crate::array::ptr_of;
use crate::ffi::ffi;
use crate::{Array, Result};

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
