//! Silero VAD v6 into an MLX folder: the 16 kHz model of the silero-vad
//! wheel (its `silero_vad_16k_op15.onnx`, the weights its `.jit` and
//! `.onnx` models share) as `config.json` + `weights.safetensors` under the
//! names [`asr_models::silero::Silero`] loads, convolutions in MLX's
//! `[out, kernel, in]` layout.

use asr_models::ModelConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::silero::SileroConfig;
use mlx::Array;

use crate::error::{ConvertError, Result};
use crate::registry::{cache_dir, fetch_converted_asset_in};
use crate::tensor::RawTensor;
use crate::whisper::raw_to_array;

/// The registry asset the model comes from.
pub const ASSET: &str = "silero-vad";

/// Version of this conversion: a cached folder written by another is
/// converted again.
pub const CONVERTER_VERSION: &str = "silero-1";

/// How a checkpoint tensor is laid out for MLX.
#[derive(Copy, Clone)]
enum Layout {
    /// As it is.
    Same,
    /// A PyTorch convolution weight `[out, in, kernel]` → MLX's `[out, kernel, in]`.
    Conv,
    /// A 1×1 convolution weight `[out, in, 1]` → a linear layer's `[out, in]`.
    Pointwise,
}

use Layout::{Conv, Pointwise, Same};

/// Ours ← the checkpoint's name.
const NAMES: [(&str, &str, Layout); 15] = [
    ("stft.weight", "model.stft.forward_basis_buffer", Conv),
    (
        "encoder.0.weight",
        "model.encoder.0.reparam_conv.weight",
        Conv,
    ),
    ("encoder.0.bias", "model.encoder.0.reparam_conv.bias", Same),
    (
        "encoder.1.weight",
        "model.encoder.1.reparam_conv.weight",
        Conv,
    ),
    ("encoder.1.bias", "model.encoder.1.reparam_conv.bias", Same),
    (
        "encoder.2.weight",
        "model.encoder.2.reparam_conv.weight",
        Conv,
    ),
    ("encoder.2.bias", "model.encoder.2.reparam_conv.bias", Same),
    (
        "encoder.3.weight",
        "model.encoder.3.reparam_conv.weight",
        Conv,
    ),
    ("encoder.3.bias", "model.encoder.3.reparam_conv.bias", Same),
    (
        "decoder.lstm.weight_ih",
        "model.decoder.rnn.weight_ih",
        Same,
    ),
    (
        "decoder.lstm.weight_hh",
        "model.decoder.rnn.weight_hh",
        Same,
    ),
    ("decoder.lstm.bias_ih", "model.decoder.rnn.bias_ih", Same),
    ("decoder.lstm.bias_hh", "model.decoder.rnn.bias_hh", Same),
    (
        "decoder.head.weight",
        "model.decoder.decoder.2.weight",
        Pointwise,
    ),
    ("decoder.head.bias", "model.decoder.decoder.2.bias", Same),
];

/// The converted model folder, fetched and converted into the project cache
/// on first use.
pub fn fetch_silero_vad() -> Result<PathBuf> {
    fetch_silero_vad_in(&cache_dir())
}

/// [`fetch_silero_vad`] with the project cache at `cache`.
pub fn fetch_silero_vad_in(cache: &Path) -> Result<PathBuf> {
    fetch_converted_asset_in(ASSET, CONVERTER_VERSION, cache, convert_silero)
}

/// Converts the wheel's 16 kHz ONNX model `onnx` into the empty folder `out`.
pub fn convert_silero(onnx: &Path, out: &Path) -> Result<()> {
    let tensors = crate::onnx::read_initializers(onnx)?;
    let config = SileroConfig::v6_16k();
    let mut arrays = BTreeMap::new();
    for (ours, theirs, layout) in NAMES {
        let raw = tensors.get(theirs).ok_or_else(|| {
            ConvertError::format(onnx, format!("no tensor {theirs:?} (not Silero VAD v6?)"))
        })?;
        let array = to_array(raw, layout)
            .map_err(|e| ConvertError::format(onnx, format!("{theirs}: {e}")))?;
        arrays.insert(ours.to_string(), array);
    }
    // The model checks every shape against the config: a checkpoint of
    // other dimensions fails here, naming the tensor.
    let weights = asr_models::Weights::new(arrays.clone(), None);
    asr_models::silero::Silero::from_weights(&weights, config.clone())
        .map_err(|e| ConvertError::format(onnx, e.to_string()))?;
    let path = out.join("weights.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    mlx::io::save_safetensors(&path, &arrays, &metadata)
        .map_err(|e| ConvertError::format(&path, e.to_string()))?;
    let config_path = out.join("config.json");
    std::fs::write(&config_path, config.to_json()).map_err(ConvertError::io(&config_path))
}

fn to_array(raw: &RawTensor, layout: Layout) -> mlx::Result<Array> {
    let array = raw_to_array(raw)?;
    match (layout, &raw.shape[..]) {
        (Conv, [_, _, _]) => array.transpose(&[0, 2, 1]),
        (Pointwise, &[out, input, 1]) => array.reshape(&[out as i32, input as i32]),
        // Other shapes are left for the model's shape check to name.
        _ => Ok(array),
    }
}
