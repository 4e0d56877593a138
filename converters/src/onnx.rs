//! The weights of an ONNX model: the float32 initializers of its main
//! graph, read straight from the protobuf wire format (`ModelProto.graph` →
//! `GraphProto.initializer` → `TensorProto` dims, data type, name and raw or
//! float data). Nothing else of the graph is interpreted.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ConvertError, Result};
use crate::tensor::{byte_size, RawTensor, TensorDtype};

/// Largest model read: protobuf's own 2 GiB limit.
const MAX_BYTES: u64 = 2 << 30;

/// `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: u64 = 1;

/// Every float32 initializer of the model's graph, by name. Initializers of
/// another type, or stored outside the file, are refused by name.
pub fn read_initializers(path: &Path) -> Result<BTreeMap<String, RawTensor>> {
    let size = std::fs::metadata(path)
        .map_err(ConvertError::io(path))?
        .len();
    if size > MAX_BYTES {
        return Err(ConvertError::format(
            path,
            "larger than 2 GiB: not an ONNX model",
        ));
    }
    let bytes = std::fs::read(path).map_err(ConvertError::io(path))?;
    let bad = |message: String| ConvertError::format(path, format!("ONNX: {message}"));
    let graph = fields(&bytes)
        .map_err(bad)?
        .into_iter()
        .find(|f| f.number == 7)
        .ok_or_else(|| bad("no graph".into()))?;
    let mut out = BTreeMap::new();
    for field in fields(graph.bytes().map_err(bad)?).map_err(bad)? {
        if field.number == 5 {
            let (name, tensor) = tensor(field.bytes().map_err(bad)?).map_err(bad)?;
            out.insert(name, tensor);
        }
    }
    Ok(out)
}

/// One `TensorProto` as a named float32 tensor.
fn tensor(bytes: &[u8]) -> std::result::Result<(String, RawTensor), String> {
    let mut dims = Vec::new();
    let (mut name, mut data_type, mut raw, mut floats) = (String::new(), None, None, Vec::new());
    for field in fields(bytes)? {
        match (field.number, field.value) {
            (1, Value::Varint(d)) => dims.push(d as usize),
            (1, Value::Bytes(packed)) => {
                dims.extend(varints(packed)?.into_iter().map(|d| d as usize))
            }
            (2, Value::Varint(t)) => data_type = Some(t),
            (4, Value::Bytes(packed)) => floats.extend_from_slice(packed),
            (4, Value::Fixed32(word)) => floats.extend_from_slice(&word),
            (8, Value::Bytes(n)) => {
                name = String::from_utf8(n.to_vec()).map_err(|_| "a tensor name is not UTF-8")?
            }
            (9, Value::Bytes(r)) => raw = Some(r.to_vec()),
            (13 | 14, _) => return Err(format!("tensor {name:?} keeps its data outside the file")),
            _ => {}
        }
    }
    if data_type != Some(ONNX_FLOAT) {
        return Err(format!(
            "tensor {name:?} has data type {data_type:?}, only float32 (1) is read"
        ));
    }
    let data = raw.unwrap_or(floats);
    let expected = byte_size(TensorDtype::F32, &dims)?;
    if data.len() != expected {
        return Err(format!(
            "tensor {name:?} of shape {dims:?} has {} bytes, expected {expected}",
            data.len()
        ));
    }
    Ok((
        name,
        RawTensor {
            dtype: TensorDtype::F32,
            shape: dims,
            data,
        },
    ))
}

struct Field<'a> {
    number: u64,
    value: Value<'a>,
}

enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl<'a> Field<'a> {
    fn bytes(&self) -> std::result::Result<&'a [u8], String> {
        match self.value {
            Value::Bytes(b) => Ok(b),
            _ => Err(format!("field {} is not a message", self.number)),
        }
    }
}

/// The fields of one protobuf message, in order.
fn fields(mut bytes: &[u8]) -> std::result::Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut bytes)?),
            1 => {
                take(&mut bytes, 8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|_| "length overflow")?;
                Value::Bytes(take(&mut bytes, len)?)
            }
            5 => Value::Fixed32(take(&mut bytes, 4)?.try_into().expect("4 bytes")),
            wire => return Err(format!("unsupported wire type {wire} (field {number})")),
        };
        out.push(Field { number, value });
    }
    Ok(out)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err("truncated".into());
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn varint(bytes: &mut &[u8]) -> std::result::Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn varints(mut bytes: &[u8]) -> std::result::Result<Vec<u64>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(varint(&mut bytes)?);
    }
    Ok(out)
}
