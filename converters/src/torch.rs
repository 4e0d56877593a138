//! PyTorch checkpoints of `torch.save`: the zip format (torch ≥ 1.6), where
//! `<archive>/data.pkl` holds the object tree and `<archive>/data/<key>` the
//! raw storages it refers to, and the legacy format before it, one stream of
//! pickles (magic number, protocol, system info, the object tree, the
//! storage keys) followed by each storage's element count and bytes.
//! Tensors are materialized contiguous, honoring storage offsets, strides
//! and storages shared between tensors. Training state (optimizers,
//! callbacks, schedulers) is skipped by name: a converter never needs it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{ConvertError, Result};
use crate::pickle::{read_pickle, read_pickle_prefix, StorageRef, TensorRef, Value};
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

/// The first pickle of a legacy file: protocol 2, the 10-byte magic number
/// 0x1950a86a20f9469cfc6c, STOP.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";

/// The legacy format's protocol version record.
const LEGACY_PROTOCOL: i64 = 1001;

/// Top-level entries of training checkpoints that hold no model weights.
const TRAINING_STATE: [&str; 6] = [
    "optimizer",
    "optimizer_state",
    "optimizer_states",
    "callbacks",
    "lr_schedulers",
    "loops",
];

/// Reads a `torch.save` checkpoint, zip or legacy.
pub fn read_checkpoint(path: &Path) -> Result<TorchCheckpoint> {
    match check_magic(path)? {
        Format::Zip => read_zip(path),
        Format::Legacy => read_legacy(path),
    }
}

fn read_zip(path: &Path) -> Result<TorchCheckpoint> {
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

    let (refs, _) = weight_tensors(&root);
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for (_, t) in &refs {
        if !storages.contains_key(&t.storage.key) {
            let entry = format!("{prefix}data/{}", t.storage.key);
            let mut bytes = read_entry(&mut archive, &entry, storage_bytes(&t.storage), path)?;
            if big_endian {
                swap_bytes(&mut bytes, t.storage.dtype.size());
            }
            storages.insert(t.storage.key.clone(), bytes);
        }
    }
    let tensors = materialize_all(refs, &storages, path)?;
    Ok(TorchCheckpoint { root, tensors })
}

/// Reads a legacy checkpoint: its pickles, then each storage in the order
/// of the keys list, as an 8-byte element count and the elements. Storages
/// only training state refers to are stepped over.
fn read_legacy(path: &Path) -> Result<TorchCheckpoint> {
    let bytes = std::fs::read(path).map_err(ConvertError::io(path))?;
    let bad = |message: String| ConvertError::format(path, format!("legacy checkpoint: {message}"));
    if !bytes.starts_with(LEGACY_MAGIC) {
        return Err(bad(
            "no torch magic number (a pickle, but not one torch.save wrote)".into(),
        ));
    }
    let mut at = LEGACY_MAGIC.len();
    let mut next_pickle = |what: &str| -> Result<Value> {
        let end = bytes
            .len()
            .min(at.saturating_add(MAX_PICKLE_BYTES as usize));
        let (value, used) =
            read_pickle_prefix(&bytes[at..end]).map_err(|m| bad(format!("{what}: {m}")))?;
        at += used;
        Ok(value)
    };
    match next_pickle("protocol version")? {
        Value::Int(LEGACY_PROTOCOL) => {}
        other => {
            return Err(bad(format!(
                "protocol version {other:?}, expected {LEGACY_PROTOCOL}"
            )))
        }
    }
    let big_endian = match next_pickle("system info")?.get("little_endian") {
        Some(Value::Bool(little)) => !little,
        _ => return Err(bad("system info has no little_endian flag".into())),
    };
    let root = next_pickle("object tree")?;
    let keys = match next_pickle("storage keys")? {
        Value::List(keys) => keys,
        other => return Err(bad(format!("storage keys are {other:?}, not a list"))),
    };
    let (refs, training) = weight_tensors(&root);
    let declared: HashMap<&str, &StorageRef> = refs
        .iter()
        .chain(&training)
        .map(|(_, t)| (t.storage.key.as_str(), &t.storage))
        .collect();
    let wanted: std::collections::HashSet<&str> =
        refs.iter().map(|(_, t)| t.storage.key.as_str()).collect();
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for key in &keys {
        let Value::Str(key) = key else {
            return Err(bad(format!("storage key {key:?} is not a string")));
        };
        let storage = declared
            .get(key.as_str())
            .ok_or_else(|| bad(format!("storage {key} is written but no tensor uses it")))?;
        let count: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(format!("storage {key}: truncated")))?;
        let count = if big_endian {
            u64::from_be_bytes(count)
        } else {
            u64::from_le_bytes(count)
        };
        if count < storage.numel as u64 {
            return Err(bad(format!(
                "storage {key} holds {count} elements, its tensors declare {}",
                storage.numel
            )));
        }
        let size = count
            .checked_mul(storage.dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad(format!("storage {key}: {count} elements overflow")))?;
        let data = bytes
            .get(at + 8..)
            .and_then(|rest| rest.get(..size))
            .ok_or_else(|| bad(format!("storage {key}: truncated ({size} bytes declared)")))?;
        at += 8 + size;
        if wanted.contains(key.as_str()) {
            let mut data = data.to_vec();
            if big_endian {
                swap_bytes(&mut data, storage.dtype.size());
            }
            storages.insert(key.clone(), data);
        }
    }
    if let Some((name, t)) = refs
        .iter()
        .find(|(_, t)| !storages.contains_key(&t.storage.key))
    {
        return Err(bad(format!("{name}: storage {} is missing", t.storage.key)));
    }
    let tensors = materialize_all(refs, &storages, path)?;
    Ok(TorchCheckpoint { root, tensors })
}

/// The tensors of a checkpoint's object tree by dotted name: those of the
/// model, and those under a top-level training-state entry.
type NamedTensors = Vec<(String, TensorRef)>;

fn weight_tensors(root: &Value) -> (NamedTensors, NamedTensors) {
    let (mut weights, mut training) = (Vec::new(), Vec::new());
    match root {
        Value::Dict(items) => {
            for (k, v) in items {
                let (name, out) = match k {
                    Value::Str(k) if TRAINING_STATE.contains(&k.as_str()) => {
                        (k.clone(), &mut training)
                    }
                    Value::Str(k) => (k.clone(), &mut weights),
                    Value::Int(k) => (k.to_string(), &mut weights),
                    _ => continue,
                };
                collect_tensors(v, &name, out);
            }
        }
        other => collect_tensors(other, "", &mut weights),
    }
    (weights, training)
}

/// Every named tensor copied out of its storage; two of one name is an error.
fn materialize_all(
    refs: NamedTensors,
    storages: &HashMap<String, Vec<u8>>,
    path: &Path,
) -> Result<BTreeMap<String, RawTensor>> {
    let mut tensors = BTreeMap::new();
    for (name, t) in refs {
        let tensor = materialize(&t, &storages[&t.storage.key])
            .map_err(|m| ConvertError::format(path, format!("{name}: {m}")))?;
        if tensors.insert(name.clone(), tensor).is_some() {
            return Err(ConvertError::format(
                path,
                format!("two tensors are both named {name}"),
            ));
        }
    }
    Ok(tensors)
}

enum Format {
    Zip,
    Legacy,
}

/// A zip file, or the legacy format that torch < 1.6 wrote (a bare pickle
/// stream, first byte PROTO); anything else is refused.
fn check_magic(path: &Path) -> Result<Format> {
    let mut magic = Vec::with_capacity(4);
    File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut magic))
        .map_err(ConvertError::io(path))?;
    if magic == ZIP_MAGIC {
        Ok(Format::Zip)
    } else if magic.first() == Some(&0x80) {
        Ok(Format::Legacy)
    } else {
        Err(ConvertError::format(
            path,
            "not a PyTorch checkpoint (zip or legacy)",
        ))
    }
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
    /// `model_state_dict`, `state_dict`, `model_state` or `model` when the
    /// top level holds one.
    pub fn state_dict(&self) -> BTreeMap<String, RawTensor> {
        for key in ["model_state_dict", "state_dict", "model_state", "model"] {
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
