//! pyannote's 2022 segmentation model (PyanNet): its Lightning checkpoint
//! → an MLX folder (`config.json` + `weights.safetensors`) that
//! [`asr_models::segmentation::Segmentation::load`] reads.
//!
//! The sizes come from the checkpoint's `hyper_parameters`. The sinc layer
//! is stored as what it computes: its band-pass filters, made once here
//! from the learned cut-off frequencies (asteroid's `ParamSincFB`), as a
//! plain convolution weight. Convolution weights become MLX's
//! `[out, kernel, in]`; every other tensor keeps its PyTorch name.

use asr_models::ModelConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::segmentation::SegmentationConfig;
use mlx::kernels::row_major;
use mlx::{Array, Dtype};

use crate::error::{ConvertError, Result};
use crate::pickle::Value;
use crate::registry;
use crate::tensor::RawTensor;
use crate::torch::read_checkpoint;
use crate::whisper::raw_to_array;

/// The registry asset holding the checkpoint.
pub const ASSET: &str = "pyannote-segmentation";

/// Changes whenever the written folder would; cached conversions made by
/// another version are redone.
pub const CONVERTER_VERSION: &str = "segmentation-1";

/// The task the checkpoint was trained for. Its Lightning checkpoint
/// records it in a `pyannote.audio.core.task.Specifications` object, whose
/// state the checkpoint reader leaves unread (it runs no code and keeps
/// configuration classes opaque), so it is fixed here: 5 s chunks, three
/// local speakers, multi-label (one sigmoid per speaker).
const CHUNK_SECONDS: i32 = 5;
const SPEAKERS: i32 = 3;

/// pyannote's SincNet layers that its hyper-parameters do not describe.
const SINC_FILTERS: i32 = 80;
const SINC_KERNEL: i32 = 251;
const SINC_MIN_LOW_HZ: f64 = 50.0;
const SINC_MIN_BAND_HZ: f64 = 50.0;
const CONV_CHANNELS: i32 = 60;
const CONV_KERNEL: i32 = 5;
const POOL: i32 = 3;

/// The converted folder of the registry's checkpoint, made in
/// [`registry::cache_dir`] on first use.
pub fn fetch_segmentation() -> Result<PathBuf> {
    fetch_segmentation_in(&registry::cache_dir())
}

/// [`fetch_segmentation`] with the project cache at `cache`.
pub fn fetch_segmentation_in(cache: &Path) -> Result<PathBuf> {
    registry::fetch_converted_asset_in(ASSET, CONVERTER_VERSION, cache, convert_segmentation)
}

/// Writes `config.json` and `weights.safetensors` of the PyanNet
/// checkpoint `checkpoint` into the existing folder `out`.
pub fn convert_segmentation(checkpoint: &Path, out: &Path) -> Result<()> {
    let fail = |message: String| ConvertError::format(checkpoint, message);
    let ckpt = read_checkpoint(checkpoint)?;
    let hyper = ckpt
        .root
        .get("hyper_parameters")
        .ok_or_else(|| fail("no `hyper_parameters`: not a pyannote Lightning checkpoint".into()))?;
    let config = config_from(hyper).map_err(fail)?;
    let tensors = ckpt.state_dict();
    let arrays = mlx_weights(&tensors, &config).map_err(fail)?;
    let weights = out.join("weights.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    mlx::io::save_safetensors(&weights, &arrays, &metadata)
        .map_err(|e| ConvertError::format(&weights, e.to_string()))?;
    let config_path = out.join("config.json");
    std::fs::write(&config_path, config.to_json()).map_err(ConvertError::io(&config_path))
}

/// The model's sizes from PyanNet's hyper-parameters (`sample_rate`,
/// `sincnet`, `lstm`, `linear`).
fn config_from(hyper: &Value) -> std::result::Result<SegmentationConfig, String> {
    let int = |path: &[&str]| -> std::result::Result<i32, String> {
        match lookup(hyper, path) {
            Some(Value::Int(v)) => {
                i32::try_from(*v).map_err(|_| format!("{} = {v}", path.join(".")))
            }
            other => Err(format!(
                "hyper_parameters.{}: expected an integer, found {other:?}",
                path.join(".")
            )),
        }
    };
    let flag = |path: &[&str]| match lookup(hyper, path) {
        Some(Value::Bool(v)) => Ok(*v),
        other => Err(format!(
            "hyper_parameters.{}: expected a boolean, found {other:?}",
            path.join(".")
        )),
    };
    if !flag(&["lstm", "monolithic"])? {
        return Err(
            "hyper_parameters.lstm.monolithic is false: per-layer LSTM modules are not supported"
                .into(),
        );
    }
    let sample_rate = int(&["sample_rate"])?;
    if int(&["num_channels"])? != 1 {
        return Err("only single-channel models are supported".into());
    }
    let config = SegmentationConfig {
        sample_rate,
        chunk_samples: CHUNK_SECONDS * sample_rate,
        speakers: SPEAKERS,
        sinc_filters: SINC_FILTERS,
        sinc_kernel: SINC_KERNEL,
        sinc_stride: int(&["sincnet", "stride"])?,
        conv_channels: CONV_CHANNELS,
        conv_kernel: CONV_KERNEL,
        pool: POOL,
        lstm_hidden: int(&["lstm", "hidden_size"])?,
        lstm_layers: int(&["lstm", "num_layers"])?,
        lstm_bidirectional: flag(&["lstm", "bidirectional"])?,
        linear_hidden: int(&["linear", "hidden_size"])?,
        linear_layers: int(&["linear", "num_layers"])?,
    };
    config.validate()?;
    Ok(config)
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// The state dict as MLX weights: the sinc filter bank computed, the
/// convolutions made channels-last, everything else f32 as it is.
fn mlx_weights(
    tensors: &BTreeMap<String, RawTensor>,
    config: &SegmentationConfig,
) -> std::result::Result<BTreeMap<String, Array>, String> {
    const SINC: &str = "sincnet.conv1d.0.filterbank.";
    let mut out = BTreeMap::new();
    for (name, tensor) in tensors {
        if name.starts_with(SINC) {
            continue;
        }
        let mlx_err = |e: mlx::Error| format!("{name}: {e}");
        let array = raw_to_array(tensor)
            .and_then(|a| a.astype(Dtype::F32))
            .map_err(mlx_err)?;
        let is_conv = name.starts_with("sincnet.conv1d.") && name.ends_with(".weight");
        let array = match is_conv {
            true if tensor.shape.len() != 3 => {
                return Err(format!(
                    "{name}: a convolution weight of shape {:?}",
                    tensor.shape
                ))
            }
            true => row_major(&array.transpose(&[0, 2, 1]).map_err(mlx_err)?, Dtype::F32)
                .map_err(mlx_err)?,
            false => array,
        };
        out.insert(name.clone(), array);
    }
    let param = |key: &str| {
        tensors
            .get(&format!("{SINC}{key}"))
            .map(|t| t.to_f32().into_iter().map(f64::from).collect::<Vec<_>>())
            .ok_or_else(|| format!("missing tensor {SINC}{key}"))
    };
    let bank = sinc_filters(
        &param("low_hz_")?,
        &param("band_hz_")?,
        &param("window_")?,
        &param("n_")?,
        config,
    )?;
    let shape = [config.sinc_filters, config.sinc_kernel, 1];
    let array = Array::from_slice(&bank, &shape).map_err(|e| format!("sinc filters: {e}"))?;
    out.insert("sincnet.conv1d.0.weight".into(), array);
    Ok(out)
}

/// asteroid's `ParamSincFB` filters, `[filters, kernel]` row-major: for
/// each learned band `[low, high]`, a windowed band-pass in cosine
/// (symmetric) form, and then all again in sine (antisymmetric) form, each
/// scaled by `1 / (2·band)`. `window` and `n` (the angular time of each tap
/// left of the centre, `2π·t / sample_rate`) are the checkpoint's buffers of
/// the half kernel. Computed in f64, stored in f32.
fn sinc_filters(
    low_hz: &[f64],
    band_hz: &[f64],
    window: &[f64],
    n: &[f64],
    config: &SegmentationConfig,
) -> std::result::Result<Vec<f32>, String> {
    let bands = (config.sinc_filters / 2) as usize;
    let half = (config.sinc_kernel / 2) as usize;
    if low_hz.len() != bands || band_hz.len() != bands || window.len() != half || n.len() != half {
        return Err(format!(
            "sinc filter bank: {} low and {} band frequencies, {} window and {} time taps; \
             expected {bands}, {bands}, {half}, {half}",
            low_hz.len(),
            band_hz.len(),
            window.len(),
            n.len()
        ));
    }
    let nyquist = f64::from(config.sample_rate) / 2.0;
    let mut cosine = Vec::with_capacity(bands * (2 * half + 1));
    let mut sine = Vec::with_capacity(cosine.capacity());
    for (low, band) in low_hz.iter().zip(band_hz) {
        let low = SINC_MIN_LOW_HZ + low.abs();
        let high = (low + SINC_MIN_BAND_HZ + band.abs()).clamp(SINC_MIN_LOW_HZ, nyquist);
        let scale = 1.0 / (2.0 * (high - low));
        let tap = |f: fn(f64) -> f64, sign: f64, j: usize| {
            sign * (f(high * n[j]) - f(low * n[j])) / (n[j] / 2.0) * window[j] * scale
        };
        let left_cos: Vec<f64> = (0..half).map(|j| tap(f64::sin, 1.0, j)).collect();
        let left_sin: Vec<f64> = (0..half).map(|j| tap(f64::cos, -1.0, j)).collect();
        cosine.extend(left_cos.iter().copied());
        cosine.push(2.0 * (high - low) * scale);
        cosine.extend(left_cos.iter().rev().copied());
        sine.extend(left_sin.iter().copied());
        sine.push(0.0);
        sine.extend(left_sin.iter().rev().map(|v| -v));
    }
    Ok(cosine.into_iter().chain(sine).map(|v| v as f32).collect())
}
