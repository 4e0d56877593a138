use std::fmt;
use std::ptr;

use cxx::UniquePtr;

use crate::ffi::ffi;
use crate::{Dtype, Element, Error, Result};

/// A lazily evaluated MLX array.
///
/// Cloning is cheap: clones share the same graph node and data. Operations
/// build a graph; data is computed on [`Array::eval`], [`crate::eval`] or when
/// it is read back (`to_vec`, `item`).
pub struct Array {
    raw: UniquePtr<ffi::MlxArray>,
}

impl Array {
    pub(crate) fn from_raw(raw: UniquePtr<ffi::MlxArray>) -> Array {
        debug_assert!(!raw.is_null());
        crate::transforms::note_created(&raw);
        Array { raw }
    }

    /// The same node, without being noted as created (see
    /// [`crate::evaluating_created`]).
    pub(crate) fn share(raw: &ffi::MlxArray) -> Array {
        Array {
            raw: ffi::clone_array(raw),
        }
    }

    pub(crate) fn raw(&self) -> &ffi::MlxArray {
        &self.raw
    }

    /// Copies `data` into a new array of the given shape.
    pub fn from_slice<T: Element>(data: &[T], shape: &[i32]) -> Result<Array> {
        let bytes = T::to_bytes(data);
        Ok(Array::from_raw(ffi::from_bytes(
            &bytes,
            shape,
            T::DTYPE as u8,
        )?))
    }

    /// Builds an array from raw native-endian bytes of `dtype`.
    pub fn from_bytes(bytes: &[u8], shape: &[i32], dtype: Dtype) -> Result<Array> {
        Ok(Array::from_raw(ffi::from_bytes(bytes, shape, dtype as u8)?))
    }

    /// A 0-dimensional array holding `value`.
    pub fn scalar<T: Element>(value: T) -> Result<Array> {
        Array::from_slice(&[value], &[])
    }

    /// An array of `shape` filled with `value` converted to `dtype`.
    pub fn full(shape: &[i32], value: f64, dtype: Dtype) -> Result<Array> {
        Ok(Array::from_raw(ffi::full(shape, value, dtype as u8)?))
    }

    pub fn zeros(shape: &[i32], dtype: Dtype) -> Result<Array> {
        Array::full(shape, 0.0, dtype)
    }

    pub fn ones(shape: &[i32], dtype: Dtype) -> Result<Array> {
        Array::full(shape, 1.0, dtype)
    }

    /// Values from `start` (inclusive) to `stop` (exclusive) in steps of `step`.
    pub fn arange(start: f64, stop: f64, step: f64, dtype: Dtype) -> Result<Array> {
        Ok(Array::from_raw(ffi::arange(
            start,
            stop,
            step,
            dtype as u8,
        )?))
    }

    pub fn shape(&self) -> Vec<i32> {
        ffi::shape_of(&self.raw)
    }

    /// Size of one axis; negative axes count from the end.
    pub fn dim(&self, axis: i32) -> Result<i32> {
        let shape = self.shape();
        let n = shape.len() as i32;
        let index = if axis < 0 { axis + n } else { axis };
        shape
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| Error::Mlx(format!("axis {axis} is out of range for {n} dimensions")))
    }

    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        ffi::size_of_array(&self.raw)
    }

    pub fn nbytes(&self) -> usize {
        self.size() * self.dtype().size()
    }

    pub fn dtype(&self) -> Dtype {
        let code = ffi::dtype_of(&self.raw);
        // build.rs admits only MLX 0.32, whose Dtype::Val has exactly the
        // codes `Dtype` lists, so an unknown code is a broken build.
        Dtype::from_code(code).unwrap_or_else(|| panic!("MLX returned unknown dtype code {code}"))
    }

    /// Evaluates the array (and everything it depends on).
    pub fn eval(&self) -> Result<()> {
        // A direct call: skips packing a one-element list on the hot path.
        Ok(ffi::eval_one(&self.raw)?)
    }

    /// Evaluates the array and asks the OS to back its buffer with 2 MiB
    /// pages (Linux, CPU backend; the 2 MiB-aligned part of the buffer). A
    /// large matrix streamed once per decoded token otherwise needs a TLB
    /// entry per 4 KiB. Returns whether the pages were collapsed now; `false`
    /// when the buffer is too small or the OS declines, which costs nothing
    /// but the speed-up. An array read in place from a mapped file
    /// ([`crate::io::map_safetensors`]) first moves into memory of its own
    /// (file pages mapped privately cannot be huge pages), for all its clones.
    pub fn prefer_huge_pages(&self) -> Result<bool> {
        Ok(ffi::prefer_huge_pages(&self.raw)?)
    }

    /// Evaluates the array and gives the address of its first element: where
    /// its data lives, e.g. to check that an array reads memory in place.
    pub fn data_address(&self) -> Result<usize> {
        Ok(ffi::data_address(&self.raw)?)
    }

    /// `Ok` when the array's elements are `T`s.
    fn expect_dtype<T: Element>(&self) -> Result<()> {
        let dtype = self.dtype();
        if dtype != T::DTYPE {
            return Err(Error::DtypeMismatch {
                array: dtype,
                requested: T::DTYPE,
            });
        }
        Ok(())
    }

    /// Evaluates and copies the elements out, row-major.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.expect_dtype::<T>()?;
        T::read(self.size(), |bytes| {
            Ok(ffi::copy_to_bytes(&self.raw, bytes)?)
        })
    }

    /// As [`Self::to_vec`], into `out`, whose allocation is kept (resized to
    /// the array's size): a read repeated per token allocates and zeroes
    /// nothing (the vocabulary's logits would cost glibc's
    /// `malloc_consolidate`, `memset` and fresh memory every token).
    pub fn read_into<T: Element + bytemuck::Pod>(&self, out: &mut Vec<T>) -> Result<()> {
        self.expect_dtype::<T>()?;
        out.resize(self.size(), T::zeroed());
        Ok(ffi::copy_to_bytes(
            &self.raw,
            bytemuck::cast_slice_mut(out),
        )?)
    }

    /// Evaluates and copies the raw bytes out, row-major.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; self.nbytes()];
        ffi::copy_to_bytes(&self.raw, &mut bytes)?;
        Ok(bytes)
    }

    /// The single element of a one-element array.
    pub fn item<T: Element>(&self) -> Result<T> {
        if self.size() != 1 {
            return Err(Error::Mlx(format!(
                "item() needs a one-element array, shape is {:?}",
                self.shape()
            )));
        }
        Ok(self.to_vec::<T>()?[0])
    }

    pub fn astype(&self, dtype: Dtype) -> Result<Array> {
        Ok(Array::from_raw(ffi::astype(&self.raw, dtype as u8)?))
    }

    /// MLX's own rendering of the values (evaluates the array).
    pub fn to_string_with_values(&self) -> Result<String> {
        Ok(ffi::describe(&self.raw)?)
    }
}

impl Clone for Array {
    fn clone(&self) -> Array {
        Array::from_raw(ffi::clone_array(&self.raw))
    }
}

/// Shows shape and dtype without forcing evaluation.
impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Array(shape={:?}, dtype={:?})",
            self.shape(),
            self.dtype()
        )
    }
}

/// Packs arrays into the C++ list type used for multi-array arguments.
/// The raw pointer of an optional array operand (null for `None`), for the
/// bridge's functions that take optional arrays.
pub(crate) fn ptr_of(a: Option<&Array>) -> *const ffi::MlxArray {
    a.map_or(ptr::null(), |a| a.raw() as *const _)
}

pub(crate) fn to_array_vec(arrays: &[&Array]) -> UniquePtr<ffi::ArrayVec> {
    let mut v = ffi::array_vec_new();
    for a in arrays {
        ffi::array_vec_push(v.pin_mut(), a.raw());
    }
    v
}

/// Unpacks a C++ array list.
pub(crate) fn from_array_vec(v: &ffi::ArrayVec) -> Result<Vec<Array>> {
    (0..ffi::array_vec_len(v))
        .map(|i| Ok(Array::from_raw(ffi::array_vec_get(v, i)?)))
        .collect()
}
