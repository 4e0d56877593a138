//! Single `.safetensors` files (shards are [`crate::state_dict`]'s job): read
//! whole with the `safetensors` crate, which validates the header (length,
//! JSON, offsets inside the data, byte counts matching dtype × shape), or
//! a block of rows at a time ([`TensorFile`]); and written a block of rows
//! at a time ([`TensorWriter`]), so that converting a large checkpoint holds
//! one block in memory, not the checkpoint.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

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

/// A `.safetensors` file's header, read and parsed, the file left open
/// after it.
struct Header {
    file: std::fs::File,
    /// The whole file's bytes.
    file_length: u64,
    /// The header's bytes (after its 8-byte length).
    length: u64,
    entries: BTreeMap<String, serde_json::Value>,
}

impl Header {
    fn read(path: &Path) -> Result<Header> {
        let mut file = std::fs::File::open(path).map_err(ConvertError::io(path))?;
        let file_length = file.metadata().map_err(ConvertError::io(path))?.len();
        let mut prefix = [0u8; 8];
        file.read_exact(&mut prefix)
            .map_err(|_| ConvertError::format(path, "shorter than a safetensors header"))?;
        let length = u64::from_le_bytes(prefix);
        if length > file_length.saturating_sub(8) {
            return Err(ConvertError::format(
                path,
                format!("header of {length} bytes in a file of {file_length}"),
            ));
        }
        let mut header = vec![0u8; length as usize];
        file.read_exact(&mut header)
            .map_err(ConvertError::io(path))?;
        let entries = serde_json::from_slice(&header)
            .map_err(|e| ConvertError::format(path, format!("invalid safetensors header: {e}")))?;
        Ok(Header {
            file,
            file_length,
            length,
            entries,
        })
    }
}

/// Checks that a `.safetensors` file is as long as its header says, reading
/// only the header: a file cut short (a copy that stopped, a full disk) is
/// found without loading the weights.
pub fn check_length(path: &Path) -> Result<()> {
    let header = Header::read(path)?;
    let data_end = header
        .entries
        .values()
        .filter_map(|entry| entry.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let (actual, expected) = (header.file_length, 8 + header.length + data_end);
    if actual != expected {
        return Err(ConvertError::format(
            path,
            format!("{actual} bytes where its header needs {expected}: the file is damaged"),
        ));
    }
    Ok(())
}

/// One tensor's entry in a `.safetensors` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    pub dtype: TensorDtype,
    pub shape: Vec<usize>,
    /// Byte range in the file.
    begin: u64,
    end: u64,
}

/// A `.safetensors` file whose header is read and checked up front and
/// whose tensors are read a block of rows at a time, so a conversion holds
/// one block in memory rather than the whole file.
pub struct TensorFile {
    path: PathBuf,
    file: std::fs::File,
    entries: BTreeMap<String, TensorEntry>,
}

impl TensorFile {
    /// Opens `path` and reads its header: every entry's dtype known, its
    /// byte count that of its shape, and its bytes inside the file.
    pub fn open(path: &Path) -> Result<TensorFile> {
        let header = Header::read(path)?;
        let data_start = 8 + header.length;
        let entries = header
            .entries
            .into_iter()
            .filter(|(name, _)| name != "__metadata__")
            .map(|(name, value)| {
                let entry = parse_entry(&value, data_start, header.file_length)
                    .map_err(|m| ConvertError::format(path, format!("{name}: {m}")))?;
                Ok((name, entry))
            })
            .collect::<Result<_>>()?;
        Ok(TensorFile {
            path: path.to_path_buf(),
            file: header.file,
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor's entry, by name.
    pub fn entries(&self) -> &BTreeMap<String, TensorEntry> {
        &self.entries
    }

    /// Reads rows `rows` (along the first axis) of tensor `name`: a tensor
    /// of those rows, so that a large one can be converted a block at a
    /// time.
    pub fn read_rows(&self, name: &str, rows: Range<usize>) -> Result<RawTensor> {
        let refuse = |m: String| ConvertError::format(&self.path, format!("{name}: {m}"));
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| refuse("no such tensor".into()))?;
        let total = entry.shape.first().copied().unwrap_or(1);
        if rows.start > rows.end || rows.end > total {
            return Err(refuse(format!("rows {rows:?} of {total}")));
        }
        let row_bytes = (entry.end - entry.begin) / total.max(1) as u64;
        let mut data = vec![0u8; row_bytes as usize * rows.len()];
        let mut file = &self.file;
        file.seek(SeekFrom::Start(entry.begin + rows.start as u64 * row_bytes))
            .and_then(|_| file.read_exact(&mut data))
            .map_err(ConvertError::io(&self.path))?;
        let mut shape = entry.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = rows.len();
        }
        RawTensor::new(entry.dtype, shape, data).map_err(refuse)
    }
}

/// A header entry `{"dtype", "shape", "data_offsets"}` of a file of
/// `length` bytes whose data starts at `data_start`.
fn parse_entry(
    value: &serde_json::Value,
    data_start: u64,
    length: u64,
) -> std::result::Result<TensorEntry, String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        dtype: Dtype,
        shape: Vec<usize>,
        data_offsets: [u64; 2],
    }
    let e: Entry =
        serde_json::from_value(value.clone()).map_err(|e| format!("invalid entry: {e}"))?;
    let dt = dtype(e.dtype).ok_or_else(|| format!("unsupported dtype {:?}", e.dtype))?;
    let [begin, end] = e.data_offsets;
    let bytes = crate::tensor::byte_size(dt, &e.shape)?;
    if end < begin || end - begin != bytes as u64 {
        return Err(format!(
            "data_offsets {begin}..{end} hold {} bytes, its shape {:?} needs {bytes}",
            end.saturating_sub(begin),
            e.shape
        ));
    }
    if data_start + end > length {
        return Err(format!(
            "its bytes end at {} in a file of {length}: the file is cut short",
            data_start + end
        ));
    }
    Ok(TensorEntry {
        dtype: dt,
        shape: e.shape,
        begin: data_start + begin,
        end: data_start + end,
    })
}

/// A planned tensor of a [`TensorWriter`].
struct Planned {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Where its bytes start in the file.
    offset: u64,
    /// Rows (along the first axis) written so far.
    rows_written: usize,
}

impl Planned {
    fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    fn row_bytes(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>() * self.dtype.bitsize() / 8
    }
}

/// A `.safetensors` file written a block of rows at a time: its header,
/// fixed from the planned names, dtypes and shapes, goes first, and each
/// block's bytes go to their place as they are made. Every planned tensor
/// must be written whole, its rows in order, in its planned dtype and
/// shape.
pub struct TensorWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    planned: BTreeMap<String, Planned>,
}

impl TensorWriter {
    /// Creates `path` with the header for `plan` (name, dtype, shape) and
    /// `metadata`.
    pub fn create(
        path: &Path,
        plan: &[(String, Dtype, Vec<usize>)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<TensorWriter> {
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!(metadata));
        let mut planned = BTreeMap::new();
        let mut offset = 0u64;
        // Wider elements first, so that every tensor starts at a multiple of
        // its element size and loads by mapping rather than copying.
        let mut plan: Vec<_> = plan.iter().collect();
        plan.sort_by_key(|(_, dtype, _)| std::cmp::Reverse(dtype.bitsize()));
        for (name, dtype, shape) in plan {
            let elements = crate::tensor::element_count(shape)
                .map_err(|m| ConvertError::format(path, format!("{name}: {m}")))?;
            let end = offset + (elements * dtype.bitsize() / 8) as u64;
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
            );
            let tensor = Planned {
                dtype: *dtype,
                shape: shape.clone(),
                offset,
                rows_written: 0,
            };
            if planned.insert(name.clone(), tensor).is_some() {
                return Err(ConvertError::format(path, format!("{name} planned twice")));
            }
            offset = end;
        }
        let mut header = serde_json::Value::Object(header).to_string().into_bytes();
        // The data starts 8-byte aligned, as the format recommends.
        header.resize(header.len().next_multiple_of(8), b' ');
        let data_start = 8 + header.len() as u64;
        for tensor in planned.values_mut() {
            tensor.offset += data_start;
        }
        let file = std::fs::File::create(path).map_err(ConvertError::io(path))?;
        file.set_len(data_start + offset)
            .map_err(ConvertError::io(path))?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
        file.write_all(&(header.len() as u64).to_le_bytes())
            .and_then(|_| file.write_all(&header))
            .map_err(ConvertError::io(path))?;
        Ok(TensorWriter {
            path: path.to_path_buf(),
            file,
            planned,
        })
    }

    /// Writes the next rows of planned tensor `name`: `bytes` of `dtype`
    /// and `shape` (the block's rows, then the tensor's other dimensions).
    pub fn write(&mut self, name: &str, dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<()> {
        let refuse = |m: String| ConvertError::format(&self.path, format!("{name}: {m}"));
        let Some(tensor) = self.planned.get_mut(name) else {
            return Err(refuse("not planned".into()));
        };
        let rows = shape.first().copied().unwrap_or(1);
        let fits = dtype == tensor.dtype
            && shape.len() == tensor.shape.len()
            && shape.get(1..) == tensor.shape.get(1..)
            && tensor.rows_written + rows <= tensor.rows();
        if !fits {
            return Err(refuse(format!(
                "{dtype:?} {shape:?} after {} rows of the planned {:?} {:?}",
                tensor.rows_written, tensor.dtype, tensor.shape
            )));
        }
        if bytes.len() != rows * tensor.row_bytes() {
            return Err(refuse(format!("{} bytes for shape {shape:?}", bytes.len())));
        }
        let offset = tensor.offset + (tensor.rows_written * tensor.row_bytes()) as u64;
        tensor.rows_written += rows;
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(bytes))
            .map_err(ConvertError::io(&self.path))
    }

    /// Checks that every planned tensor was written whole and flushes the
    /// file.
    pub fn finish(mut self) -> Result<()> {
        if let Some((name, t)) = self.planned.iter().find(|(_, t)| t.rows_written < t.rows()) {
            return Err(ConvertError::format(
                &self.path,
                format!(
                    "{name}: {} of its {} rows written",
                    t.rows_written,
                    t.rows()
                ),
            ));
        }
        self.file.flush().map_err(ConvertError::io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_tensors_start_at_multiples_of_their_element_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let plan = [
            ("a".to_string(), Dtype::F16, vec![3]),
            ("b".to_string(), Dtype::F32, vec![2]),
            ("c".to_string(), Dtype::BF16, vec![1]),
            ("d".to_string(), Dtype::I32, vec![1]),
        ];
        let mut writer = TensorWriter::create(&path, &plan, &BTreeMap::new()).unwrap();
        for (name, dtype, shape) in &plan {
            let bytes = vec![7u8; shape[0] * dtype.bitsize() / 8];
            writer.write(name, *dtype, shape, &bytes).unwrap();
        }
        writer.finish().unwrap();
        let file = TensorFile::open(&path).unwrap();
        for (name, entry) in file.entries() {
            let size = entry.dtype.size() as u64;
            assert_eq!(entry.begin % size, 0, "{name} at {}", entry.begin);
        }
        assert_eq!(file.read_rows("c", 0..1).unwrap().data, vec![7u8; 2]);
    }
}
