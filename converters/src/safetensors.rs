//! Single `.safetensors` files (shards are [`crate::state_dict`]'s job), read
//! with the `safetensors` crate, which validates the header (length, JSON,
//! offsets inside the data, byte counts matching dtype × shape).

use std::collections::BTreeMap;
use std::io::Read;
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

/// Checks that a `.safetensors` file is as long as its header says, reading
/// only the header: a file cut short (a copy that stopped, a full disk) is
/// found without loading the weights.
pub fn check_length(path: &Path) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(ConvertError::io(path))?;
    let actual = file.metadata().map_err(ConvertError::io(path))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| ConvertError::format(path, "shorter than a safetensors header"))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > actual.saturating_sub(8) {
        return Err(ConvertError::format(
            path,
            format!("header of {header_len} bytes in a file of {actual}"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(ConvertError::io(path))?;
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| ConvertError::format(path, format!("invalid safetensors header: {e}")))?;
    let data_end = entries
        .values()
        .filter_map(|entry| entry.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let expected = 8 + header_len + data_end;
    if actual != expected {
        return Err(ConvertError::format(
            path,
            format!("{actual} bytes where its header needs {expected}: the file is damaged"),
        ));
    }
    Ok(())
}
