//! safetensors files, read and written by MLX.

use std::collections::BTreeMap;
use std::path::Path;

use crate::array::to_array_vec;
use crate::ffi::ffi;
use crate::{Array, Error, Result};

/// The tensors and string metadata of one safetensors file.
#[derive(Debug, Default, Clone)]
pub struct SafeTensors {
    pub tensors: BTreeMap<String, Array>,
    pub metadata: BTreeMap<String, String>,
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::File {
        path: path.display().to_string(),
        message: "path is not valid UTF-8".into(),
    })
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Loads every tensor of a safetensors file (lazily: data is read on eval).
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<SafeTensors> {
    let path = path.as_ref();
    let file = ffi::load_safetensors(path_str(path)?).map_err(|e| file_error(path, e.what()))?;
    let names = ffi::safetensors_names(&file);
    let mut tensors = BTreeMap::new();
    for (i, name) in names.into_iter().enumerate() {
        tensors.insert(name, Array::from_raw(ffi::safetensors_array(&file, i)?));
    }
    let metadata = ffi::safetensors_meta_keys(&file)
        .into_iter()
        .zip(ffi::safetensors_meta_values(&file))
        .collect();
    Ok(SafeTensors { tensors, metadata })
}

/// Writes `tensors` with `metadata` (evaluating them as needed).
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Array>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let names: Vec<String> = tensors.keys().cloned().collect();
    let arrays: Vec<&Array> = tensors.values().collect();
    let keys: Vec<String> = metadata.keys().cloned().collect();
    let values: Vec<String> = metadata.values().cloned().collect();
    ffi::save_safetensors(
        path_str(path)?,
        &names,
        &to_array_vec(&arrays),
        &keys,
        &values,
    )
    .map_err(|e| file_error(path, e.what()))
}

impl SafeTensors {
    pub fn load(path: impl AsRef<Path>) -> Result<SafeTensors> {
        load_safetensors(path)
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_safetensors(path, &self.tensors, &self.metadata)
    }
}
