//! PyTorch checkpoints in the zip format of `torch.save` (torch ≥ 1.6):
//! `<archive>/data.pkl` holds the object tree, `<archive>/data/<key>` the raw
//! storages it refers to. Tensors are materialized contiguous, honoring
//! storage offsets, strides and storages shared between tensors.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{ConvertError, Result};
use crate::pickle::{read_pickle, TensorRef, Value};
use crate::tensor::RawTensor;

/// A checkpoint's object tree with its tensors materialized.
#[derive(Debug)]
pub struct TorchCheckpoint {
    pub root: Value,
    tensors: BTreeMap<String, RawTensor>,
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Reads a `torch.save` zip checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<TorchCheckpoint> {
    let mut file = File::open(path).map_err(ConvertError::io(path))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(ConvertError::io(path))?;
    if magic[..n] != ZIP_MAGIC[..n.min(4)] || n < 4 {
        let legacy = n >= 1 && magic[0] == 0x80;
        return Err(ConvertError::format(
            path,
            if legacy {
                "legacy (non-zip) PyTorch checkpoint: unsupported, re-save it with torch>=1.6 (torch.save default)"
            } else {
                "not a PyTorch zip checkpoint"
            },
        ));
    }
    let mut archive = zip::ZipArchive::new(File::open(path).map_err(ConvertError::io(path))?)
        .map_err(|e| ConvertError::format(path, format!("corrupt zip archive: {e}")))?;
    let pkl_name = archive
        .file_names()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .map(str::to_owned)
        .ok_or_else(|| ConvertError::format(path, "zip archive has no data.pkl"))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut archive, &pkl_name, path)?;
    let root =
        read_pickle(&pickle).map_err(|m| ConvertError::format(path, format!("{pkl_name}: {m}")))?;

    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tensors = BTreeMap::new();
    let mut refs = Vec::new();
    collect_tensors(&root, "", &mut refs);
    for (name, t) in refs {
        if !storages.contains_key(&t.storage.key) {
            let entry = format!("{prefix}data/{}", t.storage.key);
            storages.insert(
                t.storage.key.clone(),
                read_entry(&mut archive, &entry, path)?,
            );
        }
        let tensor = materialize(&t, &storages[&t.storage.key])
            .map_err(|m| ConvertError::format(path, format!("{name}: {m}")))?;
        tensors.insert(name, tensor);
    }
    Ok(TorchCheckpoint { root, tensors })
}

impl TorchCheckpoint {
    /// Every tensor under `prefix` (a dotted path of dict keys, "" for all),
    /// with names relative to it.
    pub fn tensors_under(&self, prefix: &str) -> BTreeMap<String, RawTensor> {
        let lead = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        self.tensors
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&lead)
                    .map(|rest| (rest.to_string(), v.clone()))
            })
            .collect()
    }

    /// The tensor dict of a checkpoint: the top level, or the dict under
    /// `model_state_dict`, `state_dict` or `model` when the top level holds one.
    pub fn state_dict(&self) -> BTreeMap<String, RawTensor> {
        for key in ["model_state_dict", "state_dict", "model"] {
            if matches!(self.root.get(key), Some(Value::Dict(_))) {
                return self.tensors_under(key);
            }
        }
        self.tensors_under("")
    }
}

fn read_entry(archive: &mut zip::ZipArchive<File>, name: &str, path: &Path) -> Result<Vec<u8>> {
    let mut entry = archive
        .by_name(name)
        .map_err(|e| ConvertError::format(path, format!("{name}: {e}")))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| ConvertError::format(path, format!("{name}: corrupt entry: {e}")))?;
    Ok(bytes)
}

/// Tensors anywhere in nested dicts, named by their dotted key path.
fn collect_tensors(v: &Value, path: &str, out: &mut Vec<(String, TensorRef)>) {
    match v {
        Value::Tensor(t) => out.push((path.to_string(), t.clone())),
        Value::Dict(items) => {
            for (k, v) in items {
                if let Value::Str(k) = k {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    collect_tensors(v, &child, out);
                }
            }
        }
        _ => {}
    }
}

/// Copies a strided view out of its storage into a contiguous tensor.
fn materialize(t: &TensorRef, storage: &[u8]) -> std::result::Result<RawTensor, String> {
    let es = t.storage.dtype.size();
    let available = storage.len() / es;
    if available < t.storage.numel {
        return Err(format!(
            "storage has {available} elements, expected {}",
            t.storage.numel
        ));
    }
    let numel: usize = t.shape.iter().product();
    if numel > 0 {
        let last = t.offset
            + t.shape
                .iter()
                .zip(&t.stride)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>();
        if last >= t.storage.numel {
            return Err(format!(
                "view reaches element {last} of a {}-element storage",
                t.storage.numel
            ));
        }
    }
    let mut data = Vec::with_capacity(numel * es);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        data.extend_from_slice(&storage[at * es..(at + 1) * es]);
        // Advance the multi-index, last axis fastest.
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < t.shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(RawTensor {
        dtype: t.storage.dtype,
        shape: t.shape.clone(),
        data,
    })
}
