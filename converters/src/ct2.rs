//! CTranslate2 `model.bin` (the format faster-whisper ships), as written by
//! ctranslate2's `ModelSpec._serialize` (binary versions 4 to 6):
//!
//! ```text
//! u32 version, string spec_name, u32 revision, u32 n_variables,
//!   n × (string name, u8 rank, rank × u32 dim, u8 type_id, u32 n_bytes, bytes)
//! u32 n_aliases, n × (string alias, string target)
//! string = u16 length (with the trailing NUL), bytes, NUL
//! ```
//! All integers little-endian. Quantized weights (int8 per-row, int16 with
//! one scale) come with a `<name>_scale` variable and are dequantized here,
//! before aliases are resolved: an alias stands for its target and the
//! target's scale alike, as CTranslate2's loader treats it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ConvertError, Result};
use crate::tensor::{RawTensor, TensorDtype};

/// A parsed `model.bin`.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    pub spec_name: String,
    pub revision: u32,
    /// Float weights dequantized to f32 where they were int8/int16; aliases resolved.
    pub variables: BTreeMap<String, RawTensor>,
}

/// Bounds-checked little-endian reads; every failure names the file.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                ConvertError::format(
                    self.path,
                    format!(
                        "truncated CTranslate2 model: {what} at byte {} needs {n} more bytes",
                        self.pos
                    ),
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u16(what)? as usize;
        let bytes = self.take(len, what)?;
        let text = bytes.strip_suffix(&[0]).ok_or_else(|| {
            ConvertError::format(self.path, format!("{what} is not NUL-terminated"))
        })?;
        String::from_utf8(text.to_vec())
            .map_err(|_| ConvertError::format(self.path, format!("{what} is not UTF-8")))
    }
}

fn dtype_of(id: u8) -> Option<TensorDtype> {
    // ctranslate2 `_dtype_to_type_id`: float32, int8, int16, int32, float16, bfloat16.
    Some(match id {
        0 => TensorDtype::F32,
        1 => TensorDtype::I8,
        2 => TensorDtype::I16,
        3 => TensorDtype::I32,
        4 => TensorDtype::F16,
        5 => TensorDtype::BF16,
        _ => return None,
    })
}

/// A CTranslate2 model folder (as faster-whisper downloads them).
#[derive(Debug, Clone)]
pub struct Ct2Folder {
    pub model: Ct2Model,
    /// `config.json` beside `model.bin`; `Null` when there is none.
    pub config: serde_json::Value,
}

/// Reads `model.bin` and, when present, `config.json` in `dir`.
pub fn read_model_dir(dir: &Path) -> Result<Ct2Folder> {
    let model = read_model_bin(&dir.join("model.bin"))?;
    let config_path = dir.join("config.json");
    let config = if config_path.is_file() {
        let text = std::fs::read_to_string(&config_path).map_err(ConvertError::io(&config_path))?;
        serde_json::from_str(&text)
            .map_err(|e| ConvertError::format(&config_path, format!("invalid JSON: {e}")))?
    } else {
        serde_json::Value::Null
    };
    Ok(Ct2Folder { model, config })
}

/// Reads `model.bin` at `path`.
pub fn read_model_bin(path: &Path) -> Result<Ct2Model> {
    let bytes = std::fs::read(path).map_err(ConvertError::io(path))?;
    let mut c = Cursor {
        bytes: &bytes,
        pos: 0,
        path,
    };
    let version = c.u32("binary version")?;
    if !(4..=6).contains(&version) {
        return Err(ConvertError::format(
            path,
            format!("unsupported CTranslate2 binary version {version} (supported: 4-6)"),
        ));
    }
    let spec_name = c.string("spec name")?;
    let revision = c.u32("spec revision")?;
    let count = c.u32("variable count")?;
    let mut variables = BTreeMap::new();
    for _ in 0..count {
        let name = c.string("variable name")?;
        let rank = c.u8("rank")?;
        let shape = (0..rank)
            .map(|_| c.u32("dimension").map(|d| d as usize))
            .collect::<Result<Vec<_>>>()?;
        let id = c.u8("type id")?;
        let dtype = dtype_of(id)
            .ok_or_else(|| ConvertError::format(path, format!("{name}: unknown type id {id}")))?;
        let n_bytes = c.u32("byte count")? as usize;
        let data = c.take(n_bytes, &name)?.to_vec();
        let tensor = RawTensor::new(dtype, shape, data)
            .map_err(|m| ConvertError::format(path, format!("{name}: {m}")))?;
        variables.insert(name, tensor);
    }
    let count = c.u32("alias count")?;
    let mut aliases = Vec::new();
    for _ in 0..count {
        aliases.push((c.string("alias")?, c.string("alias target")?));
    }
    if c.pos != bytes.len() {
        return Err(ConvertError::format(
            path,
            format!("{} unexpected bytes after the aliases", bytes.len() - c.pos),
        ));
    }
    dequantize(&mut variables).map_err(|m| ConvertError::format(path, m))?;
    for (alias, target) in aliases {
        let tensor = variables.get(&target).cloned().ok_or_else(|| {
            ConvertError::format(path, format!("alias {alias} points to missing {target}"))
        })?;
        variables.insert(alias, tensor);
    }
    Ok(Ct2Model {
        spec_name,
        revision,
        variables,
    })
}

/// Replaces each integer weight that has a `<name>_scale` by `value / scale`
/// (per row for int8, one scale for int16), as f32.
fn dequantize(vars: &mut BTreeMap<String, RawTensor>) -> std::result::Result<(), String> {
    let scaled: Vec<String> = vars
        .keys()
        .filter(|k| vars.contains_key(&format!("{k}_scale")))
        .cloned()
        .collect();
    for name in scaled {
        let scale = vars
            .remove(&format!("{name}_scale"))
            .expect("listed above")
            .to_f32();
        if vars.contains_key(&format!("{name}_zero")) {
            return Err(format!(
                "{name}: zero-point (AWQ) quantization is not supported"
            ));
        }
        let w = &vars[&name];
        match w.dtype {
            TensorDtype::I8 | TensorDtype::I16 => {}
            d if d.is_float() => continue, // float weights keep an unused scale in some specs
            d => {
                return Err(format!(
                    "{name}: {d:?} weights with a scale are not supported"
                ))
            }
        }
        let rows = *w
            .shape
            .first()
            .ok_or_else(|| format!("{name}: quantized scalar"))?;
        let per_row = w.numel() / rows.max(1);
        if scale.len() != 1 && scale.len() != rows {
            return Err(format!("{name}: {} scales for {rows} rows", scale.len()));
        }
        let values: Vec<f32> = w
            .to_f32()
            .iter()
            .enumerate()
            .map(|(i, v)| v / scale[if scale.len() == 1 { 0 } else { i / per_row }])
            .collect();
        let shape = w.shape.clone();
        vars.insert(name, RawTensor::from_f32(shape, &values));
    }
    Ok(())
}
