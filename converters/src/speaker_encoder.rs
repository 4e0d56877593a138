//! Resemblyzer's `pretrained.pt` (a legacy torch file: `model_state` beside
//! optimizer state) as an MLX folder that
//! [`asr_models::speaker_encoder::SpeakerEncoder::load`] reads:
//! `config.json` and `weights.safetensors` (f32, PyTorch's names). The GE2E
//! training loss's `similarity_weight` and `similarity_bias` are left out:
//! inference does not use them.

use asr_models::ModelConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::speaker_encoder::SpeakerEncoderConfig;
use mlx::Dtype;

use crate::error::{ConvertError, Result};
use crate::registry::{cache_dir, fetch_converted_asset_in};
use crate::state_dict::load_state_dict;
use crate::whisper::{raw_to_array, WriteError};

/// The registry asset holding the checkpoint.
pub const ASSET: &str = "resemblyzer";

/// Changes whenever the folder this module writes changes, so that cached
/// conversions are made again.
pub const CONVERTER_VERSION: &str = "resemblyzer-1";

/// The converted folder of registry asset `resemblyzer`, fetched and
/// converted into [`cache_dir`] on first use.
pub fn fetch_speaker_encoder() -> Result<PathBuf> {
    fetch_speaker_encoder_in(&cache_dir())
}

/// [`fetch_speaker_encoder`] with the project cache at `cache`.
pub fn fetch_speaker_encoder_in(cache: &Path) -> Result<PathBuf> {
    fetch_converted_asset_in(ASSET, CONVERTER_VERSION, cache, convert_resemblyzer)
}

/// Names and shapes of the tensors the encoder loads.
fn expected_tensors(c: &SpeakerEncoderConfig) -> Vec<(String, Vec<usize>)> {
    let (hidden, gates) = (c.hidden_size as usize, 4 * c.hidden_size as usize);
    let mut out = Vec::new();
    for layer in 0..c.num_layers as usize {
        let input = if layer == 0 { c.n_mels } else { hidden };
        out.push((format!("lstm.weight_ih_l{layer}"), vec![gates, input]));
        out.push((format!("lstm.weight_hh_l{layer}"), vec![gates, hidden]));
        out.push((format!("lstm.bias_ih_l{layer}"), vec![gates]));
        out.push((format!("lstm.bias_hh_l{layer}"), vec![gates]));
    }
    let embedding = c.embedding_size as usize;
    out.push(("linear.weight".into(), vec![embedding, hidden]));
    out.push(("linear.bias".into(), vec![embedding]));
    out
}

/// Writes the MLX folder of Resemblyzer checkpoint `source` into the
/// existing folder `out_dir`.
pub fn convert_resemblyzer(source: &Path, out_dir: &Path) -> Result<()> {
    let config = SpeakerEncoderConfig::resemblyzer();
    let mut state = load_state_dict(source)?;
    let mut tensors = BTreeMap::new();
    for (name, shape) in expected_tensors(&config) {
        let raw = state
            .remove(&name)
            .ok_or_else(|| ConvertError::format(source, format!("no tensor `{name}`")))?;
        if raw.shape != shape || !raw.dtype.is_float() {
            return Err(ConvertError::format(
                source,
                format!(
                    "`{name}` is {:?} {:?}, expected a float tensor of shape {shape:?}",
                    raw.dtype, raw.shape
                ),
            ));
        }
        let array = raw_to_array(&raw)
            .and_then(|a| a.astype(Dtype::F32))
            .map_err(|error| mlx_error(&name, error))?;
        tensors.insert(name, array);
    }
    let weights = out_dir.join("weights.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    mlx::io::save_safetensors(&weights, &tensors, &metadata)
        .map_err(|error| mlx_error(&weights.display().to_string(), error))?;
    let config_path = out_dir.join("config.json");
    std::fs::write(&config_path, config.to_json()).map_err(ConvertError::io(&config_path))
}

fn mlx_error(name: &str, error: mlx::Error) -> ConvertError {
    WriteError::Mlx {
        name: name.to_string(),
        error,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_without_a_layer_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("partial.safetensors");
        let config = SpeakerEncoderConfig::resemblyzer();
        let tensors: BTreeMap<String, mlx::Array> = expected_tensors(&config)
            .into_iter()
            .filter(|(name, _)| name != "lstm.weight_hh_l2")
            .map(|(name, shape)| {
                let shape: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
                (name, mlx::Array::zeros(&shape, Dtype::F32).unwrap())
            })
            .collect();
        mlx::io::save_safetensors(&source, &tensors, &BTreeMap::new()).unwrap();
        let err = convert_resemblyzer(&source, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no tensor `lstm.weight_hh_l2`"), "{err}");
        assert!(err.contains("partial.safetensors"), "{err}");
    }

    #[test]
    fn a_tensor_of_another_shape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("wide.safetensors");
        let config = SpeakerEncoderConfig::resemblyzer();
        let tensors: BTreeMap<String, mlx::Array> = expected_tensors(&config)
            .into_iter()
            .map(|(name, shape)| {
                let mut shape: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
                if name == "linear.weight" {
                    shape[1] = 128;
                }
                (name, mlx::Array::zeros(&shape, Dtype::F32).unwrap())
            })
            .collect();
        mlx::io::save_safetensors(&source, &tensors, &BTreeMap::new()).unwrap();
        let err = convert_resemblyzer(&source, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "`linear.weight` is F32 [256, 128], expected a float tensor of shape [256, 256]"
            ),
            "{err}"
        );
    }
}
