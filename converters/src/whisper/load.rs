//! Recognizes a Whisper checkpoint on disk and reads it into canonical form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::whisper::WhisperDims;

use super::hf_dims::dims_from_hf_config;
use super::published_heads::published_alignment_heads;
use super::{canonicalize, SourceLayout, WhisperWeights};
use crate::ct2;
use crate::error::{ConvertError, Result};
use crate::pickle::Value;
use crate::tensor::RawTensor;
use crate::{load_state_dict, torch};

/// Files a model folder may carry beside its weights that the pipeline or
/// other tools read (tokenizer, vocabulary, preprocessing settings).
pub const COMPANION_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "vocabulary.txt",
    "vocabulary.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "special_tokens_map.json",
    "normalizer.json",
    "preprocessor_config.json",
    "generation_config.json",
];

/// A checkpoint read into canonical names, plus the files to carry along.
#[derive(Debug)]
pub struct LoadedWhisper {
    pub weights: WhisperWeights,
    pub layout: SourceLayout,
    pub companion_files: Vec<PathBuf>,
}

/// Reads the Whisper checkpoint at `path` (a file or a model folder).
pub fn load_whisper(path: &Path) -> Result<LoadedWhisper> {
    if !path.exists() {
        return Err(ConvertError::format(path, "no such file or directory"));
    }
    if path.is_dir() && path.join("model.bin").is_file() {
        return load_ct2_folder(path);
    }
    if path.is_dir() && path.join("config.json").is_file() {
        return load_hf_folder(path);
    }
    if path.is_file() {
        return load_openai_checkpoint(path);
    }
    Err(ConvertError::format(
        path,
        "not a recognized Whisper checkpoint; supported: a CTranslate2 model folder \
         (model.bin + config.json, as faster-whisper uses), a Hugging Face model folder \
         (config.json + model.safetensors or pytorch_model.bin, sharded or not) or an \
         openai-whisper .pt file",
    ))
}

fn companions(dir: &Path) -> Vec<PathBuf> {
    COMPANION_FILES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect()
}

/// The `alignment_heads` list of a JSON config, when present.
fn alignment_heads(config: &serde_json::Value) -> Option<Vec<[usize; 2]>> {
    let heads = config.get("alignment_heads")?.as_array()?;
    heads
        .iter()
        .map(|pair| {
            let pair = pair.as_array()?;
            Some([
                pair.first()?.as_u64()? as usize,
                pair.get(1)?.as_u64()? as usize,
            ])
        })
        .collect()
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(ConvertError::io(path))?;
    serde_json::from_str(&text)
        .map_err(|e| ConvertError::format(path, format!("invalid JSON: {e}")))
}

/// A Hugging Face `WhisperForConditionalGeneration` folder.
fn load_hf_folder(dir: &Path) -> Result<LoadedWhisper> {
    let config_path = dir.join("config.json");
    let config_text =
        std::fs::read_to_string(&config_path).map_err(ConvertError::io(&config_path))?;
    let dims = dims_from_hf_config(&config_text)
        .map_err(|e| ConvertError::format(&config_path, format!("not a Whisper config: {e}")))?;
    let candidates = [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ];
    let weights = candidates
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ConvertError::format(
                dir,
                format!("no weights: expected one of {}", candidates.join(", ")),
            )
        })?;
    let source = load_state_dict(&weights)?;
    let tensors = canonicalize(SourceLayout::HuggingFace, source, &dims).map_err(|error| {
        ConvertError::Mapping {
            path: weights.clone(),
            error,
        }
    })?;
    let generation = dir.join("generation_config.json");
    let heads = if generation.is_file() {
        alignment_heads(&read_json(&generation)?)
    } else {
        None
    };
    Ok(LoadedWhisper {
        weights: WhisperWeights {
            dims,
            tensors,
            alignment_heads: heads,
        },
        layout: SourceLayout::HuggingFace,
        companion_files: companions(dir),
    })
}

/// openai-whisper's `.pt`: `{"dims": {...}, "model_state_dict": {...}}`.
fn load_openai_checkpoint(path: &Path) -> Result<LoadedWhisper> {
    let checkpoint = torch::read_checkpoint(path)?;
    let dims = openai_dims(checkpoint.root.get("dims")).ok_or_else(|| {
        ConvertError::format(path, "no `dims` dict with Whisper's ModelDimensions keys")
    })?;
    let tensors =
        canonicalize(SourceLayout::OpenAi, checkpoint.state_dict(), &dims).map_err(|error| {
            ConvertError::Mapping {
                path: path.to_path_buf(),
                error,
            }
        })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_stem().and_then(|s| s.to_str());
    let alignment_heads = published_alignment_heads(&dims, name);
    if alignment_heads.is_none() {
        tracing::warn!(
            path = %path.display(),
            "no published alignment heads for these dimensions; word timestamps will use the upper half of the decoder"
        );
    }
    Ok(LoadedWhisper {
        weights: WhisperWeights {
            dims,
            tensors,
            alignment_heads,
        },
        layout: SourceLayout::OpenAi,
        companion_files: companions(dir),
    })
}

fn openai_dims(dims: Option<&Value>) -> Option<WhisperDims> {
    let Some(Value::Dict(items)) = dims else {
        return None;
    };
    let json: serde_json::Map<String, serde_json::Value> = items
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Int(n)) => Some((k.clone(), serde_json::Value::from(*n))),
            _ => None,
        })
        .collect();
    serde_json::from_value(serde_json::Value::Object(json)).ok()
}

fn load_ct2_folder(dir: &Path) -> Result<LoadedWhisper> {
    let bin = dir.join("model.bin");
    let ct2::Ct2Folder { model, config } = ct2::read_model_dir(dir)?;
    if model.spec_name != "WhisperSpec" {
        return Err(ConvertError::format(
            &bin,
            format!("a {} model, not Whisper", model.spec_name),
        ));
    }
    let dims = ct2_dims(&model.variables).map_err(|m| ConvertError::format(&bin, m))?;
    let tensors =
        canonicalize(SourceLayout::CTranslate2, model.variables, &dims).map_err(|error| {
            ConvertError::Mapping {
                path: bin.clone(),
                error,
            }
        })?;
    Ok(LoadedWhisper {
        weights: WhisperWeights {
            dims,
            tensors,
            alignment_heads: alignment_heads(&config),
        },
        layout: SourceLayout::CTranslate2,
        companion_files: companions(dir),
    })
}

/// CTranslate2 keeps no dimensions list: read them off the tensor shapes and
/// the `num_heads` settings.
fn ct2_dims(vars: &BTreeMap<String, RawTensor>) -> std::result::Result<WhisperDims, String> {
    let shape = |name: &str| {
        vars.get(name)
            .map(|t| t.shape.clone())
            .ok_or_else(|| format!("missing variable {name}"))
    };
    let heads = |name: &str| {
        vars.get(name)
            .and_then(RawTensor::scalar_i64)
            .and_then(|h| i32::try_from(h).ok())
            .ok_or_else(|| format!("missing integer setting {name}"))
    };
    let layers = |side: &str| {
        let prefix = format!("{side}/layer_");
        vars.keys()
            .filter_map(|k| {
                k.strip_prefix(&prefix)?
                    .split('/')
                    .next()?
                    .parse::<i32>()
                    .ok()
            })
            .max()
            .map_or(0, |m| m + 1)
    };
    let conv1 = shape("encoder/conv1/weight")?;
    let embeddings = shape("decoder/embeddings/weight")?;
    let (audio_pos, text_pos) = (
        shape("encoder/position_encodings/encodings")?,
        shape("decoder/position_encodings/encodings")?,
    );
    let dim = |s: &[usize], i: usize, name: &str| {
        s.get(i)
            .and_then(|&d| i32::try_from(d).ok())
            .ok_or_else(|| format!("{name} has shape {s:?}"))
    };
    Ok(WhisperDims {
        n_mels: dim(&conv1, 1, "encoder/conv1/weight")?,
        n_audio_ctx: dim(&audio_pos, 0, "encoder/position_encodings")?,
        n_audio_state: dim(&conv1, 0, "encoder/conv1/weight")?,
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: layers("encoder"),
        n_vocab: dim(&embeddings, 0, "decoder/embeddings/weight")?,
        n_text_ctx: dim(&text_pos, 0, "decoder/position_encodings")?,
        n_text_state: dim(&embeddings, 1, "decoder/embeddings/weight")?,
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: layers("decoder"),
    })
}
