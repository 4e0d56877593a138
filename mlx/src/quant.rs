//! MLX affine quantization: groups of `group_size` consecutive weights along
//! the last axis share a scale and a bias; values are packed `bits` wide
//! into u32 words.

use crate::array::{from_array_vec, ptr_of};
use crate::ffi::ffi;
use crate::kernels::LinearEpilogue;
use crate::{Array, Error, Result};

/// A weight matrix in MLX's quantized form.
#[derive(Clone, Debug)]
pub struct QuantizedMatrix {
    pub weight: Array,
    pub scales: Array,
    pub biases: Array,
    pub group_size: i32,
    pub bits: i32,
    /// In [`Self::linear`] with many rows of `x` (more than 8: an encoder
    /// window, a prompt), round `x` to int8 and sum the products in int32,
    /// like CTranslate2's int8: four times the multiply-adds per
    /// instruction of the f32 GEMM on the dequantized matrix. The result is the exact product of the rounded `x` with the
    /// matrix, each element of `x` moved by up to 1/254 of the largest
    /// magnitude in its group (one scale per row and quantization group).
    /// Applies to 8-bit matrices on the CPU backend of such CPUs; elsewhere
    /// `linear` is unchanged.
    pub int8_activations: bool,
}

impl QuantizedMatrix {
    /// Quantizes `w` along its last axis.
    pub fn quantize(w: &Array, group_size: i32, bits: i32) -> Result<QuantizedMatrix> {
        let packed = ffi::quantize(w.raw(), group_size, bits)?;
        let parts = from_array_vec(&packed)?;
        let [weight, scales, biases]: [Array; 3] = parts.try_into().map_err(|p: Vec<Array>| {
            Error::Mlx(format!("quantize returned {} arrays, expected 3", p.len()))
        })?;
        Ok(QuantizedMatrix {
            weight,
            scales,
            biases,
            group_size,
            bits,
            int8_activations: false,
        })
    }

    /// The approximate original matrix.
    pub fn dequantize(&self) -> Result<Array> {
        let raw = ffi::dequantize(
            self.weight.raw(),
            self.scales.raw(),
            self.biases.raw(),
            self.group_size,
            self.bits,
        )?;
        Ok(Array::from_raw(raw))
    }

    /// Whether [`Self::linear`] runs on this crate's kernel pool at any
    /// number of rows (the int8 products), never on OpenBLAS's threads.
    pub fn multiplies_on_kernel_pool(&self) -> bool {
        self.int8_activations && self.bits == 8 && crate::kernels::int8_products_available()
    }

    /// `x @ Wᵀ` then `epilogue`, as [`crate::kernels::linear`] does for a dense weight.
    pub fn linear(&self, x: &Array, epilogue: LinearEpilogue<'_>) -> Result<Array> {
        // SAFETY: the pointers are null or borrowed from live arrays for the call.
        let raw = unsafe {
            ffi::quantized_linear(
                x.raw(),
                self.weight.raw(),
                self.scales.raw(),
                self.biases.raw(),
                self.group_size,
                self.bits,
                ptr_of(epilogue.bias),
                epilogue.gelu,
                ptr_of(epilogue.residual),
                self.int8_activations,
            )?
        };
        Ok(Array::from_raw(raw))
    }

    /// `x @ Wᵀ` when `transpose` (the layout of a linear layer), else `x @ W`.
    pub fn matmul(&self, x: &Array, transpose: bool) -> Result<Array> {
        let raw = ffi::quantized_matmul(
            x.raw(),
            self.weight.raw(),
            self.scales.raw(),
            self.biases.raw(),
            transpose,
            self.group_size,
            self.bits,
        )?;
        Ok(Array::from_raw(raw))
    }
}
