//! safetensors files: read into memory of their own, or mapped into memory
//! and read in place; written laid out for the mapping.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::Path;

use memmap2::{MmapMut, MmapOptions};

use crate::ffi::ffi;
use crate::{Array, Dtype, Error, Result};

/// The tensors and string metadata of one safetensors file.
#[derive(Debug, Default, Clone)]
pub struct SafeTensors {
    pub tensors: BTreeMap<String, Array>,
    pub metadata: BTreeMap<String, String>,
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Reads every tensor of a safetensors file into memory of its own
/// (anonymous memory, as MLX allocates it), each with one `pread`: the
/// whole file is read at load, and nothing of it stays tied to the file.
///
/// Models load this way rather than by [`map_safetensors`]: on the 2-core
/// AVX2 machine of docs/benchmarks.md, a Qwen3-ASR decoder step reading its
/// 0.9 GB of weights from the mapping took three times as long (its output
/// layer eight times) as from memory of its own.
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<SafeTensors> {
    let path = path.as_ref();
    let (file, map) = open_mapped(path)?;
    let (specs, metadata) = parse_header(path, &map)?;
    drop(map);
    let tensors = specs
        .iter()
        .map(|spec| Ok((spec.name.clone(), read_tensor(path, &file, spec)?)))
        .collect::<Result<_>>()?;
    Ok(SafeTensors { tensors, metadata })
}

/// `path` opened and mapped copy-on-write.
fn open_mapped(path: &Path) -> Result<(File, MmapMut)> {
    let file = File::open(path).map_err(|e| file_error(path, e))?;
    // SAFETY: the mapping is private, so nothing this process does changes
    // the file; another process truncating it is the documented hazard.
    let map = unsafe { MmapOptions::new().map_copy(&file) }.map_err(|e| file_error(path, e))?;
    Ok((file, map))
}

/// The tensors (in file order) and the string metadata of a mapped file.
fn parse_header(path: &Path, map: &[u8]) -> Result<(Vec<TensorSpec>, BTreeMap<String, String>)> {
    let (header_len, metadata) =
        safetensors::SafeTensors::read_metadata(map).map_err(|e| file_error(path, e))?;
    let specs = tensor_specs(path, header_len, &metadata)?;
    let strings = metadata
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((specs, strings))
}

/// One tensor read from `file` into a buffer of its own.
fn read_tensor(path: &Path, file: &File, spec: &TensorSpec) -> Result<Array> {
    let raw = ffi::read_array(
        file.as_raw_fd(),
        spec.bytes.start as u64,
        &spec.shape,
        spec.dtype as u8,
    )
    .map_err(|e| file_error(path, format!("tensor `{}`: {}", spec.name, e.what())))?;
    Ok(Array::from_raw(raw))
}

/// A file mapped into memory, owned by the MLX arrays made over it and
/// unmapped when the last of them is freed (on whichever thread frees it).
pub(crate) struct Mapping(MmapMut);

/// The mapped bytes, for the C++ side to wrap in arrays.
pub(crate) fn mapping_bytes(m: &mut Mapping) -> &mut [u8] {
    &mut m.0
}

/// One tensor of a safetensors header.
struct TensorSpec {
    name: String,
    dtype: Dtype,
    shape: Vec<i32>,
    /// Its bytes, as offsets into the whole file.
    bytes: Range<usize>,
}

impl TensorSpec {
    /// Whether MLX can read the tensor where it lies in the file: it has
    /// bytes, and they start at a multiple of the element size.
    fn mappable(&self) -> bool {
        !self.bytes.is_empty() && self.bytes.start.is_multiple_of(self.dtype.size())
    }
}

/// MLX's dtype for a safetensors dtype: as MLX's own reader does, the 8-bit float
/// formats MLX lacks come as their raw bytes (`U8`).
fn mlx_dtype(dtype: safetensors::Dtype) -> Option<Dtype> {
    use safetensors::Dtype as S;
    Some(match dtype {
        S::BOOL => Dtype::Bool,
        S::U8 | S::F8_E4M3 | S::F8_E8M0 => Dtype::U8,
        S::U16 => Dtype::U16,
        S::U32 => Dtype::U32,
        S::U64 => Dtype::U64,
        S::I8 => Dtype::I8,
        S::I16 => Dtype::I16,
        S::I32 => Dtype::I32,
        S::I64 => Dtype::I64,
        S::F16 => Dtype::F16,
        S::BF16 => Dtype::BF16,
        S::F32 => Dtype::F32,
        S::F64 => Dtype::F64,
        S::C64 => Dtype::Complex64,
        _ => return None,
    })
}

/// The tensors of a parsed header, in file order.
fn tensor_specs(
    path: &Path,
    header_len: usize,
    metadata: &safetensors::tensor::Metadata,
) -> Result<Vec<TensorSpec>> {
    // 8 bytes of header length, then the header, then the data.
    let data_start = 8 + header_len;
    let mut specs = Vec::new();
    for (name, info) in metadata.tensors() {
        let dtype = mlx_dtype(info.dtype).ok_or_else(|| {
            file_error(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}, which MLX lacks",
                    info.dtype
                ),
            )
        })?;
        let shape = info
            .shape
            .iter()
            .map(|&d| i32::try_from(d))
            .collect::<std::result::Result<Vec<i32>, _>>()
            .map_err(|_| {
                file_error(
                    path,
                    format!(
                        "tensor `{name}` has shape {:?}, too large for MLX",
                        info.shape
                    ),
                )
            })?;
        let (begin, end) = info.data_offsets;
        specs.push(TensorSpec {
            name,
            dtype,
            shape,
            bytes: data_start + begin..data_start + end,
        });
    }
    specs.sort_by_key(|s| s.bytes.start);
    Ok(specs)
}

/// Maps a safetensors file into memory and makes its tensors MLX arrays over
/// the mapped bytes, so that loading reads and copies nothing: pages come
/// from the OS page cache when a tensor is first used, and stay shared with
/// it. The mapping lives as long as any of the arrays (they outlive the
/// returned [`SafeTensors`]); the file may be renamed or deleted meanwhile.
///
/// The mapping is private and copy-on-write: MLX may reuse a weight's buffer
/// for an operation's output once nothing else holds the weight, and such a
/// write stays in this process, never reaching the file. Truncating the file
/// while it is mapped makes reads of the lost pages fault (SIGBUS), as with
/// any mapped file.
///
/// A tensor whose bytes do not start at a multiple of its element size (MLX's
/// kernels read elements aligned) is read from the file into a buffer of its
/// own instead, as are empty tensors. Files from [`save_safetensors`] and
/// from Hugging Face's writer have no such tensor; those of MLX's own writer
/// (`mx.save_safetensors`, which neither pads its header nor orders tensors
/// by element size) mostly do, and are then mostly read as
/// [`load_safetensors`] reads them.
///
/// On the CPU backend the arrays are zero-copy; GPU backends adopt the
/// memory where their allocator can, and copy otherwise.
pub fn map_safetensors(path: impl AsRef<Path>) -> Result<SafeTensors> {
    let path = path.as_ref();
    let (file, map) = open_mapped(path)?;
    let (specs, metadata) = parse_header(path, &map)?;
    let mut tensors = BTreeMap::new();
    for spec in specs.iter().filter(|s| !s.mappable()) {
        tensors.insert(spec.name.clone(), read_tensor(path, &file, spec)?);
    }
    if specs.iter().any(TensorSpec::mappable) {
        let mapped = ffi::mapped_file(Box::new(Mapping(map)));
        for spec in specs.into_iter().filter(TensorSpec::mappable) {
            let raw = ffi::array_over_mapping(
                &mapped,
                spec.bytes.start,
                &spec.shape,
                spec.dtype as u8,
            )
            .map_err(|e| file_error(path, format!("tensor `{}`: {}", spec.name, e.what())))?;
            tensors.insert(spec.name, Array::from_raw(raw));
        }
    }
    Ok(SafeTensors { tensors, metadata })
}

/// The safetensors name of an MLX dtype.
fn safetensors_dtype(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::Bool => "BOOL",
        Dtype::U8 => "U8",
        Dtype::U16 => "U16",
        Dtype::U32 => "U32",
        Dtype::U64 => "U64",
        Dtype::I8 => "I8",
        Dtype::I16 => "I16",
        Dtype::I32 => "I32",
        Dtype::I64 => "I64",
        Dtype::F16 => "F16",
        Dtype::F32 => "F32",
        Dtype::F64 => "F64",
        Dtype::BF16 => "BF16",
        Dtype::Complex64 => "C64",
    }
}

/// Writes `tensors` with `metadata` (evaluating them as needed), laid out
/// for [`map_safetensors`] to read every tensor in place: the header is
/// padded to a multiple of 8 bytes and the tensors follow largest element
/// first, so each starts at a multiple of its element size.
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Array>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let arrays: Vec<&Array> = tensors.values().collect();
    crate::eval(&arrays).map_err(|e| file_error(path, e))?;
    let mut order: Vec<(&String, &Array)> = tensors.iter().collect();
    order.sort_by_key(|&(name, a)| (std::cmp::Reverse(a.dtype().size()), name));

    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0;
    for &(name, a) in &order {
        let end = offset + a.nbytes();
        let entry = serde_json::json!({
            "dtype": safetensors_dtype(a.dtype()),
            "shape": a.shape(),
            "data_offsets": [offset, end],
        });
        header.insert(name.clone(), entry);
        offset = end;
    }
    let mut header = serde_json::Value::Object(header).to_string();
    header.push_str(&" ".repeat(header.len().next_multiple_of(8) - header.len()));

    let write = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(header.as_bytes())?;
        for (_, a) in order {
            out.write_all(&a.to_bytes()?)?;
        }
        Ok(out.flush()?)
    };
    write().map_err(|e| file_error(path, e))
}

impl SafeTensors {
    pub fn load(path: impl AsRef<Path>) -> Result<SafeTensors> {
        load_safetensors(path)
    }

    /// See [`map_safetensors`].
    pub fn map(path: impl AsRef<Path>) -> Result<SafeTensors> {
        map_safetensors(path)
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_safetensors(path, &self.tensors, &self.metadata)
    }
}
