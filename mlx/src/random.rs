//! Reproducible random arrays: each call derives its own key from `seed`.

use crate::ffi::ffi;
use crate::{Array, Dtype, Result};

/// Standard normal samples.
pub fn normal(shape: &[i32], dtype: Dtype, seed: u64) -> Result<Array> {
    Ok(Array::from_raw(ffi::random_normal(
        shape,
        dtype as u8,
        seed,
    )?))
}

/// Uniform samples in `[low, high)`.
pub fn uniform(shape: &[i32], dtype: Dtype, low: f32, high: f32, seed: u64) -> Result<Array> {
    Ok(Array::from_raw(ffi::random_uniform(
        shape,
        dtype as u8,
        low,
        high,
        seed,
    )?))
}
