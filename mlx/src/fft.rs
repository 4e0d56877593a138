//! Fast Fourier transforms.

use crate::ffi::ffi;
use crate::{Array, Result};

/// Real-input FFT of length `n` along `axis` (complex64, `n / 2 + 1` bins).
pub fn rfft(a: &Array, n: i32, axis: i32) -> Result<Array> {
    Ok(Array::from_raw(ffi::rfft(a.raw(), n, axis)?))
}

/// Inverse of [`rfft`], producing `n` real values along `axis`.
pub fn irfft(a: &Array, n: i32, axis: i32) -> Result<Array> {
    Ok(Array::from_raw(ffi::irfft(a.raw(), n, axis)?))
}
