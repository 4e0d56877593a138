//! Parakeet (NeMo FastConformer CTC, RNN-T, TDT and hybrid) checkpoints as
//! our MLX folder: `config.json`, the NeMo model config as
//! [`ParakeetConfig`] reads it (with `quantization` when quantized), and
//! `weights.safetensors` under parakeet-mlx's parameter names and MLX
//! layouts (convolutions `[out, kernel, in]`, batch norm unfolded), i.e.
//! what mlx-community's Parakeet repos ship as `model.safetensors`.
//!
//! Sources, told apart by what `source` is:
//! - a file: NVIDIA's `.nemo` archive ([`nemo`]);
//! - a folder with `config.json` naming a NeMo `target` and
//!   `model.safetensors`: the mlx-community / parakeet-mlx layout, checked
//!   and rewritten;
//! - a folder with a transformers Parakeet model (its config has a
//!   `model_type`: CTC, RNN-T or TDT): [`hf`].
//!
//! Whatever the source, every tensor the config implies must be present in
//! its shape and nothing else, so a folder that converts is one the model
//! loads.

mod hf;
mod names;
mod nemo;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use asr_models::parakeet::ParakeetConfig;
use asr_models::ModelConfig;
use mlx::Array;

use crate::error::{ConvertError, Result};
use crate::expected::check_tensor_set;
use crate::state_dict::load_state_dict;
use crate::tensor::RawTensor;
use crate::whisper::{insert_quantized, raw_to_array, WeightOptions, WriteError};

/// Changes whenever the folder this module writes changes, so that cached
/// conversions are made again.
pub const CONVERTER_VERSION: &str = "parakeet-1";

/// Writes the MLX folder of Parakeet checkpoint `source` (a `.nemo` file, a
/// folder holding one, or an mlx-community or transformers folder) into the
/// existing empty folder `out_dir`.
pub fn convert_parakeet(source: &Path, out_dir: &Path, opts: &WeightOptions) -> Result<()> {
    if let Some(q) = opts.quantization {
        q.check().map_err(WriteError::from)?;
    }
    let nemo_file = if source.is_dir() {
        lone_nemo_file(source)
    } else {
        Some(source.to_path_buf())
    };
    let (mut config, tensors) = match nemo_file {
        Some(nemo) => nemo::read_nemo(&nemo, out_dir)?,
        None => read_folder(source)?,
    };
    check_tensors(source, &config, &tensors)?;
    let tensors = to_output(tensors, opts)?;
    config.quantization = opts.quantization;
    let weights = out_dir.join("weights.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    mlx::io::save_safetensors(&weights, &tensors, &metadata)
        .map_err(|e| ConvertError::mlx(&weights.display().to_string(), e))?;
    let config_path = out_dir.join("config.json");
    std::fs::write(&config_path, config.to_json()).map_err(ConvertError::io(&config_path))
}

/// The `.nemo` file of a folder that holds one and no `config.json` (a Hub
/// snapshot of one of NVIDIA's repos).
fn lone_nemo_file(folder: &Path) -> Option<std::path::PathBuf> {
    if folder.join("config.json").exists() {
        return None;
    }
    let mut nemo = std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "nemo"));
    let first = nemo.next()?;
    nemo.next().is_none().then_some(first)
}

/// The files to take from a Hub repo of a Parakeet model: NVIDIA's repos
/// hold one `.nemo`; otherwise an mlx-community or transformers repo's
/// config and weights, with the transformers companions it has.
pub fn repo_files(listing: &BTreeSet<String>) -> std::result::Result<Vec<String>, String> {
    let nemo: Vec<&String> = listing.iter().filter(|f| f.ends_with(".nemo")).collect();
    match nemo.as_slice() {
        [one] => return Ok(vec![one.to_string()]),
        [] => {}
        many => {
            return Err(format!(
                "several .nemo files ({many:?}); name one as a local path"
            ))
        }
    }
    if !(listing.contains("config.json") && listing.contains("model.safetensors")) {
        return Err("neither a .nemo file nor config.json and model.safetensors".into());
    }
    Ok([
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ]
    .iter()
    .filter(|f| listing.contains(**f))
    .map(|f| f.to_string())
    .collect())
}

/// A transformers folder (its config has a `model_type`) or an
/// mlx-community one.
fn read_folder(source: &Path) -> Result<(ParakeetConfig, BTreeMap<String, Array>)> {
    let config_path = source.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(ConvertError::io(&config_path))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ConvertError::format(&config_path, format!("invalid JSON: {e}")))?;
    if value.get("model_type").is_some() {
        hf::read_hf_ctc(source)
    } else {
        read_mlx_folder(source, &config_path, value)
    }
}

/// An mlx-community folder: `config.json` and `model.safetensors`, already
/// in parakeet-mlx's names and layouts.
fn read_mlx_folder(
    source: &Path,
    config_path: &Path,
    value: serde_json::Value,
) -> Result<(ParakeetConfig, BTreeMap<String, Array>)> {
    let config = parse_config(config_path, "the config", value)?;
    if config.quantization.is_some() {
        return Err(ConvertError::format(
            config_path,
            "the model is already quantized; convert an unquantized checkpoint",
        ));
    }
    let weights_path = source.join("model.safetensors");
    if !weights_path.is_file() {
        return Err(ConvertError::format(
            source,
            "no model.safetensors in the folder",
        ));
    }
    let tensors = load_state_dict(&weights_path)?
        .iter()
        .map(|(name, raw)| Ok((name.clone(), float_array(&weights_path, name, raw)?)))
        .collect::<Result<_>>()?;
    Ok((config, tensors))
}

/// `value` (the config `what` of file `path`) as a checked [`ParakeetConfig`].
fn parse_config(path: &Path, what: &str, value: serde_json::Value) -> Result<ParakeetConfig> {
    let config: ParakeetConfig = serde_json::from_value(value).map_err(|e| {
        ConvertError::format(path, format!("{what} is not a Parakeet (NeMo) config: {e}"))
    })?;
    config
        .validate()
        .map_err(|e| ConvertError::format(path, format!("{what}: {e}")))?;
    Ok(config)
}

/// Refuses a checkpoint whose tensors are not exactly those of its config,
/// in name and shape (MLX layouts).
fn check_tensors(
    source: &Path,
    config: &ParakeetConfig,
    tensors: &BTreeMap<String, Array>,
) -> Result<()> {
    let shapes = tensors
        .iter()
        .map(|(n, a)| (n.clone(), a.shape()))
        .collect();
    check_tensor_set(source, &names::expected_tensors(config), &shapes)
}

/// Whether `name` is a linear layer's weight: the 2-D `.weight`s but the
/// prediction network's embedding.
fn is_linear_weight(name: &str, array: &Array) -> bool {
    name.ends_with(".weight") && array.ndim() == 2 && name != names::EMBEDDING
}

/// The tensors in the written dtype, linear weights quantized when asked.
fn to_output(
    tensors: BTreeMap<String, Array>,
    opts: &WeightOptions,
) -> Result<BTreeMap<String, Array>> {
    let mut out = BTreeMap::new();
    for (name, array) in tensors {
        let array = array
            .astype(opts.dtype.mlx())
            .map_err(|e| ConvertError::mlx(&name, e))?;
        let quantization = opts.quantization.filter(|q| {
            is_linear_weight(&name, &array)
                && array.shape().last().is_some_and(|&d| d % q.group_size == 0)
        });
        match quantization {
            Some(q) => insert_quantized(&mut out, &name, &array, q)
                .map_err(|e| ConvertError::mlx(&name, e))?,
            None => {
                out.insert(name, array);
            }
        }
    }
    Ok(out)
}

/// Tensor `name` of file `path` as an f32 array; anything but floats is
/// refused.
fn float_array(path: &Path, name: &str, raw: &RawTensor) -> Result<Array> {
    if !raw.dtype.is_float() {
        return Err(ConvertError::format(
            path,
            format!("`{name}` is {:?}, expected floats", raw.dtype),
        ));
    }
    raw_to_array(raw)
        .and_then(|a| a.astype(mlx::Dtype::F32))
        .map_err(|e| ConvertError::mlx(name, e))
}
