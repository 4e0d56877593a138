//! PyTorch checkpoints in the zip format of `torch.save` (torch ≥ 1.6):
//! `<archive>/data.pkl` holds the object tree, `<archive>/data/<key>` the raw
//! storages it refers to. Tensors are materialized contiguous, honoring
//! storage offsets, strides and storages shared between tensors.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{ConvertError, Result};
use crate::pickle::{read_pickle, StorageRef, TensorRef, Value};
use crate::tensor::{byte_size, element_count, RawTensor};

/// A checkpoint's object tree with its tensors materialized.
#[derive(Debug)]
pub struct TorchCheckpoint {
    pub root: Value,
    tensors: BTreeMap<String, RawTensor>,
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Largest `data.pkl` read. The object tree of a checkpoint takes a few
/// hundred KB even for the largest Whisper.
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Deflate's largest expansion: a 258-byte match per 2-bit code, rounded up.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// `little` or `big`.
const BYTEORDER_BYTES: u64 = 16;

/// Reads a `torch.save` zip checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<TorchCheckpoint> {
    check_magic(path)?;
    let mut archive = zip::ZipArchive::new(File::open(path).map_err(ConvertError::io(path))?)
        .map_err(|e| ConvertError::format(path, format!("corrupt zip archive: {e}")))?;
    let pkl_name = archive
        .file_names()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .map(str::to_owned)
        .ok_or_else(|| ConvertError::format(path, "zip archive has no data.pkl"))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut archive, &pkl_name, MAX_PICKLE_BYTES, path)?;
    let root =
        read_pickle(&pickle).map_err(|m| ConvertError::format(path, format!("{pkl_name}: {m}")))?;
    let big_endian = is_big_endian(&mut archive, &prefix, path)?;

    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tensors = BTreeMap::new();
    let mut refs = Vec::new();
    collect_tensors(&root, "", &mut refs);
    for (name, t) in refs {
        if !storages.contains_key(&t.storage.key) {
            let entry = format!("{prefix}data/{}", t.storage.key);
            let mut bytes = read_entry(&mut archive, &entry, storage_bytes(&t.storage), path)?;
            if big_endian {
                swap_bytes(&mut bytes, t.storage.dtype.size());
            }
            storages.insert(t.storage.key.clone(), bytes);
        }
        let tensor = materialize(&t, &storages[&t.storage.key])
            .map_err(|m| ConvertError::format(path, format!("{name}: {m}")))?;
        if tensors.insert(name.clone(), tensor).is_some() {
            return Err(ConvertError::format(
                path,
                format!("two tensors are both named {name}"),
            ));
        }
    }
    Ok(TorchCheckpoint { root, tensors })
}

/// Refuses anything but a zip file, naming the legacy pickle format that
/// torch < 1.6 wrote (a bare pickle stream, first byte PROTO).
fn check_magic(path: &Path) -> Result<()> {
    let mut magic = Vec::with_capacity(4);
    File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut magic))
        .map_err(ConvertError::io(path))?;
    if magic == ZIP_MAGIC {
        return Ok(());
    }
    Err(ConvertError::format(
        path,
        if magic.first() == Some(&0x80) {
            "legacy (non-zip) PyTorch checkpoint: unsupported, re-save it with torch>=1.6 (torch.save default)"
        } else {
            "not a PyTorch zip checkpoint"
        },
    ))
}

/// torch records the writer's byte order in `byteorder` (absent before
/// torch 1.11, when it was always the host's; in practice little-endian).
fn is_big_endian(archive: &mut zip::ZipArchive<File>, prefix: &str, path: &Path) -> Result<bool> {
    let name = format!("{prefix}byteorder");
    if archive.index_for_name(&name).is_none() {
        return Ok(false);
    }
    match read_entry(archive, &name, BYTEORDER_BYTES, path)?.as_slice() {
        b"little" => Ok(false),
        b"big" => Ok(true),
        other => Err(ConvertError::format(
            path,
            format!(
                "{name}: unknown byte order {:?}",
                String::from_utf8_lossy(other)
            ),
        )),
    }
}

/// The bytes a storage holds, as its record in the pickle declares.
fn storage_bytes(storage: &StorageRef) -> u64 {
    (storage.numel as u64).saturating_mul(storage.dtype.size() as u64)
}

/// Reverses the bytes of every `size`-byte element.
fn swap_bytes(bytes: &mut [u8], size: usize) {
    for element in bytes.chunks_exact_mut(size) {
        element.reverse();
    }
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

/// Reads the entry `name`, refusing one that declares more than `limit`
/// bytes or inflates to more than it declares: memory follows the bytes
/// the reader needs, never a compressed stream's whim.
fn read_entry(
    archive: &mut zip::ZipArchive<File>,
    name: &str,
    limit: u64,
    path: &Path,
) -> Result<Vec<u8>> {
    let entry = archive
        .by_name(name)
        .map_err(|e| ConvertError::format(path, format!("{name}: {e}")))?;
    let declared = entry.size();
    if declared > limit {
        return Err(ConvertError::format(
            path,
            format!("{name}: declares {declared} bytes, more than the {limit} it may hold"),
        ));
    }
    let compressed = entry.compressed_size();
    if declared > compressed.saturating_mul(MAX_DEFLATE_RATIO) {
        return Err(ConvertError::format(
            path,
            format!("{name}: declares {declared} bytes, more than its {compressed} compressed bytes can hold"),
        ));
    }
    let mut bytes = Vec::new();
    entry
        .take(declared.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ConvertError::format(path, format!("{name}: corrupt entry: {e}")))?;
    if bytes.len() as u64 > declared {
        return Err(ConvertError::format(
            path,
            format!("{name}: inflates to more than the {declared} bytes it declares"),
        ));
    }
    Ok(bytes)
}

/// Tensors anywhere in nested dicts, lists and tuples, named by their dotted
/// path of keys and indices (`layers.0.weight`, `state.3.exp_avg`).
fn collect_tensors(v: &Value, path: &str, out: &mut Vec<(String, TensorRef)>) {
    let child = |key: &dyn std::fmt::Display| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        Value::Tensor(t) => out.push((path.to_string(), t.clone())),
        Value::Dict(items) => {
            for (k, v) in items {
                match k {
                    Value::Str(k) => collect_tensors(v, &child(k), out),
                    Value::Int(k) => collect_tensors(v, &child(k), out),
                    _ => {}
                }
            }
        }
        Value::List(items) | Value::Tuple(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_tensors(v, &child(&i), out);
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
    let numel = element_count(&t.shape)?;
    let bytes = byte_size(t.storage.dtype, &t.shape)?;
    if numel > 0 {
        // The view's last element; every element read lies at or before it.
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |at, (&d, &s)| {
                at.checked_add((d - 1).checked_mul(s)?)
            });
        match last {
            Some(last) if last < t.storage.numel => {}
            Some(last) => {
                return Err(format!(
                    "view reaches element {last} of a {}-element storage",
                    t.storage.numel
                ))
            }
            None => return Err("view reaches beyond any storage".into()),
        }
    }
    let mut data = Vec::new();
    data.try_reserve_exact(bytes)
        .map_err(|_| format!("cannot allocate {bytes} bytes"))?;
    // The innermost axis is copied as one run when its elements are adjacent
    // (always, for the contiguous tensors most checkpoints hold).
    let (run, outer) = match (t.shape.last(), t.stride.last()) {
        (Some(&n), Some(&1)) => (n, t.shape.len() - 1),
        _ => (1, t.shape.len()),
    };
    let mut index = vec![0usize; outer];
    for _ in 0..numel.checked_div(run).unwrap_or(0) {
        let at = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        data.extend_from_slice(&storage[at * es..(at + run) * es]);
        // Advance the multi-index, last outer axis fastest.
        for axis in (0..outer).rev() {
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
