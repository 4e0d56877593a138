//! Writes canonical Whisper weights as an MLX model folder that both this
//! project and Python mlx-whisper load: `config.json` (ModelDimensions keys,
//! `model_type`, optional `quantization`) and `weights.safetensors`.
//!
//! The folder appears only when complete: everything is written into a
//! sibling staging folder that is renamed into place at the end.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use asr_models::quantization::{Quantization, QuantizeError};
use asr_models::whisper::WhisperConfig;
use mlx::quant::QuantizedMatrix;
use mlx::{Array, Dtype};

use super::{is_quantizable, WhisperWeights};
use crate::atomic::StagedFolder;
use crate::out_folder;
use crate::tensor::{RawTensor, TensorDtype};

/// Floating-point type of the written weights.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OutputDtype {
    F32,
    F16,
    BF16,
}

impl OutputDtype {
    pub(crate) fn mlx(self) -> Dtype {
        match self {
            OutputDtype::F32 => Dtype::F32,
            OutputDtype::F16 => Dtype::F16,
            OutputDtype::BF16 => Dtype::BF16,
        }
    }
}

/// How a family converter (Parakeet, Qwen3-ASR) writes the weights: the
/// floating-point type of every unquantized tensor, and the affine
/// quantization of the matrices its family quantizes (each converter says
/// which).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WeightOptions {
    pub dtype: OutputDtype,
    pub quantization: Option<Quantization>,
}

impl Default for WeightOptions {
    fn default() -> WeightOptions {
        WeightOptions {
            dtype: OutputDtype::F32,
            quantization: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub dtype: OutputDtype,
    pub quantization: Option<Quantization>,
    /// Replace an existing output folder.
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} already exists (pass --force to replace it)")]
    OutputExists(PathBuf),
    #[error("{out} is {relation} ({from}): choose an output folder apart from the source")]
    OverlapsSource {
        out: PathBuf,
        from: PathBuf,
        relation: &'static str,
    },
    #[error("{out}: not replaced with --force, as {reason}; only a folder a conversion wrote is replaced")]
    NotConverterOutput { out: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{name}: {error}")]
    Mlx { name: String, error: mlx::Error },
    #[error("unsupported quantization: {0}")]
    Quantization(#[from] QuantizeError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |error| WriteError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Writes `weights` into `out_dir`, with `extra_files` (tokenizer files)
/// copied beside them. `progress(done, total)` is called per tensor.
pub fn write_mlx_whisper(
    weights: &WhisperWeights,
    out_dir: &Path,
    opts: &WriteOptions,
    extra_files: &[PathBuf],
    progress: &dyn Fn(usize, usize),
) -> Result<(), WriteError> {
    check(opts, out_dir)?;
    let staging = StagedFolder::beside(out_dir).map_err(io_err(out_dir))?;
    let tensors = to_mlx_tensors(weights, opts, progress)?;
    let weights_path = staging.path().join("weights.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    mlx::io::save_safetensors(&weights_path, &tensors, &metadata).map_err(|error| {
        WriteError::Mlx {
            name: weights_path.display().to_string(),
            error,
        }
    })?;
    let config_path = staging.path().join("config.json");
    let config = WhisperConfig {
        dims: weights.dims.clone(),
        quantization: opts.quantization,
    };
    fs::write(&config_path, config.to_json()).map_err(io_err(&config_path))?;
    for file in extra_files {
        let target = staging
            .path()
            .join(file.file_name().unwrap_or(file.as_os_str()));
        fs::copy(file, &target).map_err(io_err(file))?;
    }
    staging.finish(out_dir).map_err(io_err(out_dir))
}

/// Refuses what the write cannot do before anything is read or written: a
/// quantization the converter does not write, an existing folder without
/// `force`, or with `force` one that a conversion did not write.
pub(super) fn check(opts: &WriteOptions, out_dir: &Path) -> Result<(), WriteError> {
    if let Some(q) = opts.quantization {
        q.check()?;
    }
    if out_dir.symlink_metadata().is_err() {
        return Ok(());
    }
    if !opts.force {
        return Err(WriteError::OutputExists(out_dir.to_path_buf()));
    }
    out_folder::check_replaceable(out_dir)
}

fn mlx_dtype(dtype: TensorDtype) -> Dtype {
    match dtype {
        TensorDtype::F64 => Dtype::F64,
        TensorDtype::F32 => Dtype::F32,
        TensorDtype::F16 => Dtype::F16,
        TensorDtype::BF16 => Dtype::BF16,
        TensorDtype::I64 => Dtype::I64,
        TensorDtype::I32 => Dtype::I32,
        TensorDtype::I16 => Dtype::I16,
        TensorDtype::I8 => Dtype::I8,
        TensorDtype::U8 => Dtype::U8,
        TensorDtype::Bool => Dtype::Bool,
    }
}

/// A host tensor as an MLX array of its own dtype.
pub fn raw_to_array(t: &RawTensor) -> mlx::Result<Array> {
    let shape: Vec<i32> = t.shape.iter().map(|&d| d as i32).collect();
    Array::from_bytes(&t.data, &shape, mlx_dtype(t.dtype))
}

/// Inserts `name` (a `*.weight` matrix) affine-quantized as MLX stores it:
/// the packed `weight` with its `scales` and `biases` beside it.
pub(crate) fn insert_quantized(
    out: &mut BTreeMap<String, Array>,
    name: &str,
    array: &Array,
    q: Quantization,
) -> mlx::Result<()> {
    let m = QuantizedMatrix::quantize(array, q.group_size, q.bits)?;
    let prefix = name.strip_suffix(".weight").unwrap_or(name);
    out.insert(format!("{prefix}.scales"), m.scales);
    out.insert(format!("{prefix}.biases"), m.biases);
    out.insert(name.to_string(), m.weight);
    Ok(())
}

fn to_mlx_tensors(
    weights: &WhisperWeights,
    opts: &WriteOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<BTreeMap<String, Array>, WriteError> {
    let mut out = BTreeMap::new();
    let total = weights.tensors.len();
    for (done, (name, raw)) in weights.tensors.iter().enumerate() {
        let mlx_err = |error| WriteError::Mlx {
            name: name.clone(),
            error,
        };
        let array = raw_to_array(raw)
            .and_then(|a| a.astype(opts.dtype.mlx()))
            .map_err(mlx_err)?;
        let group_fits = |q: &Quantization| {
            raw.shape
                .last()
                .is_some_and(|&d| d % q.group_size as usize == 0)
        };
        match opts
            .quantization
            .filter(|q| is_quantizable(name) && group_fits(q))
        {
            Some(q) => insert_quantized(&mut out, name, &array, q).map_err(mlx_err)?,
            None => {
                out.insert(name.clone(), array);
            }
        }
        progress(done + 1, total);
    }
    if let Some(heads) = &weights.alignment_heads {
        let flat: Vec<i64> = heads
            .iter()
            .flat_map(|&[l, h]| [l as i64, h as i64])
            .collect();
        let array = Array::from_slice(&flat, &[heads.len() as i32, 2]).map_err(|error| {
            WriteError::Mlx {
                name: "alignment_heads".into(),
                error,
            }
        })?;
        out.insert("alignment_heads".to_string(), array);
    }
    Ok(out)
}
