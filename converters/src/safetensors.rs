//! safetensors files, single or sharded (`*.safetensors.index.json`), read
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

/// The shard files named by an index's `weight_map`, in order, without repeats.
pub fn shard_files(index: &Path) -> Result<Vec<std::path::PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(ConvertError::io(index))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ConvertError::format(index, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ConvertError::format(index, "no `weight_map` object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| {
            ConvertError::format(index, format!("{name}: shard name is not a string"))
        })?;
        if file.contains('/') || file.contains("..") {
            return Err(ConvertError::format(
                index,
                format!("{name}: shard {file} is outside the model folder"),
            ));
        }
        let path = dir.join(file);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

/// Every tensor of a sharded checkpoint, each shard read with `read_shard`;
/// a tensor defined by two shards is an error.
pub fn read_sharded(
    index: &Path,
    read_shard: impl Fn(&Path) -> Result<BTreeMap<String, RawTensor>>,
) -> Result<BTreeMap<String, RawTensor>> {
    let mut all = BTreeMap::new();
    for shard in shard_files(index)? {
        for (name, tensor) in read_shard(&shard)? {
            if all.insert(name.clone(), tensor).is_some() {
                return Err(ConvertError::format(
                    &shard,
                    format!("{name} is also defined by another shard"),
                ));
            }
        }
    }
    Ok(all)
}
