//! Tensors as checkpoint readers produce them: host bytes, row-major,
//! little-endian, independent of any array library.

/// Element types found in checkpoints.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TensorDtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl TensorDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TensorDtype::F64 | TensorDtype::I64 => 8,
            TensorDtype::F32 | TensorDtype::I32 => 4,
            TensorDtype::F16 | TensorDtype::BF16 | TensorDtype::I16 => 2,
            TensorDtype::I8 | TensorDtype::U8 | TensorDtype::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            TensorDtype::F64 | TensorDtype::F32 | TensorDtype::F16 | TensorDtype::BF16
        )
    }
}

/// Elements in `shape`, or an error when the count does not fit in memory
/// addresses (a malformed header can claim any shape).
pub fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has too many elements"))
}

/// Bytes of a dense tensor of `dtype` and `shape`, checked like [`element_count`].
pub fn byte_size(dtype: TensorDtype, shape: &[usize]) -> Result<usize, String> {
    element_count(shape)?
        .checked_mul(dtype.size())
        .ok_or_else(|| format!("shape {shape:?} of {dtype:?} has too many bytes"))
}

/// A dense tensor: `data.len() == shape.product() * dtype.size()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTensor {
    pub dtype: TensorDtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    /// Builds a tensor after checking that the bytes fit the shape.
    pub fn new(dtype: TensorDtype, shape: Vec<usize>, data: Vec<u8>) -> Result<RawTensor, String> {
        let expected = byte_size(dtype, &shape)?;
        if data.len() != expected {
            return Err(format!(
                "{} bytes for shape {shape:?} of {dtype:?} (expected {expected})",
                data.len()
            ));
        }
        Ok(RawTensor { dtype, shape, data })
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The value of a one-element integer tensor (CTranslate2 stores
    /// settings such as head counts this way).
    pub fn scalar_i64(&self) -> Option<i64> {
        if self.numel() != 1 {
            return None;
        }
        let b = &self.data;
        Some(match self.dtype {
            TensorDtype::I64 => i64::from_le_bytes(b[..8].try_into().ok()?),
            TensorDtype::I32 => i32::from_le_bytes(b[..4].try_into().ok()?).into(),
            TensorDtype::I16 => i16::from_le_bytes(b[..2].try_into().ok()?).into(),
            TensorDtype::I8 => (b[0] as i8).into(),
            TensorDtype::U8 | TensorDtype::Bool => b[0].into(),
            _ => return None,
        })
    }

    /// Every element as f32 (for checks and dequantization).
    pub fn to_f32(&self) -> Vec<f32> {
        let es = self.dtype.size();
        self.data
            .chunks_exact(es)
            .map(|c| match self.dtype {
                TensorDtype::F64 => f64::from_le_bytes(c.try_into().unwrap()) as f32,
                TensorDtype::F32 => f32::from_le_bytes(c.try_into().unwrap()),
                TensorDtype::F16 => half::f16::from_le_bytes(c.try_into().unwrap()).to_f32(),
                TensorDtype::BF16 => half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32(),
                TensorDtype::I64 => i64::from_le_bytes(c.try_into().unwrap()) as f32,
                TensorDtype::I32 => i32::from_le_bytes(c.try_into().unwrap()) as f32,
                TensorDtype::I16 => i16::from_le_bytes(c.try_into().unwrap()) as f32,
                TensorDtype::I8 => c[0] as i8 as f32,
                TensorDtype::U8 | TensorDtype::Bool => c[0] as f32,
            })
            .collect()
    }

    /// An f32 tensor from values.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> RawTensor {
        RawTensor {
            dtype: TensorDtype::F32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}
