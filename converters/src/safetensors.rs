//! Single `.safetensors` files (shards are [`crate::state_dict`]'s job), read
//! with the `safetensors` crate, which validates the header (length, JSON,
//! offsets inside the data, byte counts matching dtype × shape).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::{ConvertError, Result};
use crate::tensor::{RawTensor, TensorDtype};

fn dtype(d: Dtype) -> Option<TensorDtype> {
    Some(match d {
        Dtype::F64 => TensorDtype::F64,
        Dtype::F32 => TensorDtype::F32,
        Dtype::F16 => TensorDtype::F16,
        Dtype::BF16 => TensorDtype::BF16,
        Dtype::I64 => TensorDtype::I64,
        Dtype::I32 => TensorDtype::I32,
        Dtype::I16 => TensorDtype::I16,
        Dtype::I8 => TensorDtype::I8,
        Dtype::U8 => TensorDtype::U8,
        Dtype::BOOL => TensorDtype::Bool,
        _ => return None,
    })
}

/// Every tensor of one `.safetensors` file.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, RawTensor>> {
    let bytes = std::fs::read(path).map_err(ConvertError::io(path))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| ConvertError::format(path, format!("invalid safetensors file: {e}")))?;
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let dt = dtype(view.dtype()).ok_or_else(|| {
                ConvertError::format(
                    path,
                    format!("{name}: unsupported dtype {:?}", view.dtype()),
                )
            })?;
            let tensor = RawTensor::new(dt, view.shape().to_vec(), view.data().to_vec())
                .map_err(|m| ConvertError::format(path, format!("{name}: {m}")))?;
            Ok((name, tensor))
        })
        .collect()
}
