//! A Qwen3-ASR checkpoint folder in either published layout, read as our
//! config and an index of its tensors under our names:
//! - Qwen's original ("thinker") layout (Qwen/Qwen3-ASR-0.6B, -1.7B):
//!   `config.json` with the model under `thinker_config`, tensors
//!   `thinker.audio_tower.*` (the projector as `proj1`, `proj2`),
//!   `thinker.model.*` and `thinker.lm_head.weight`;
//! - transformers' layout (Qwen/Qwen3-ASR-1.7B-hf): `Qwen3ASRConfig` at the
//!   top level and our names already.
//!
//! Both hold `model.safetensors`, or shards named by
//! `model.safetensors.index.json`; the tensors' bytes are read later, one
//! at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::qwen3_asr::config::Qwen3AsrConfig;
use asr_models::ModelConfig;
use serde_json::{json, Value};

use super::names::from_thinker;
use crate::error::{ConvertError, Result};
use crate::safetensors::{TensorEntry, TensorFile};
use crate::state_dict::weight_map;

/// The `model_type` of both layouts' configs.
const MODEL_TYPE: &str = "qwen3_asr";

/// Qwen's `Qwen3ASRAudioEncoderConfig` defaults, for the keys an original
/// config leaves out (ours are transformers' and differ).
fn original_audio_defaults() -> Value {
    json!({
        "num_mel_bins": 128,
        "encoder_layers": 32,
        "encoder_attention_heads": 20,
        "encoder_ffn_dim": 5120,
        "d_model": 1280,
        "n_window": 100,
        "output_dim": 3584,
        "n_window_infer": 400,
        "downsample_hidden_size": 480,
    })
}

/// Which layout a folder has.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    Thinker,
    Transformers,
}

impl Layout {
    /// Our name of the checkpoint's tensor `name`.
    fn our_name(self, name: &str) -> String {
        match self {
            Layout::Thinker => from_thinker(name),
            Layout::Transformers => name.to_string(),
        }
    }
}

/// The checkpoint's config as ours, and its layout.
pub(super) fn read_config(source: &Path) -> Result<(Qwen3AsrConfig, Layout)> {
    let path = source.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(ConvertError::io(&path))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| ConvertError::format(&path, format!("invalid JSON: {e}")))?;
    let refuse = |message: String| ConvertError::format(&path, message);
    match value.get("model_type").and_then(Value::as_str) {
        Some(other) if other != MODEL_TYPE => {
            return Err(refuse(format!(
                "model_type is {other:?}: not a Qwen3-ASR config ({MODEL_TYPE:?})"
            )))
        }
        _ => {}
    }
    if value.get("quantization").is_some() || value.get("quantization_config").is_some() {
        return Err(refuse(
            "the checkpoint is already quantized; convert an unquantized one".into(),
        ));
    }
    let (ours, layout) = if let Some(thinker) = value.get("thinker_config") {
        (
            from_original(&value, thinker).map_err(refuse)?,
            Layout::Thinker,
        )
    } else if value.get("audio_config").is_some() && value.get("text_config").is_some() {
        (from_transformers(&value), Layout::Transformers)
    } else {
        return Err(refuse(
            "not a Qwen3-ASR config: neither `thinker_config` (Qwen's layout) nor \
             `audio_config` and `text_config` (transformers')"
                .into(),
        ));
    };
    let lacks_positions = ours["audio_config"]
        .get("max_position_embeddings")
        .is_none();
    let mut config: Qwen3AsrConfig =
        serde_json::from_value(ours).map_err(|e| refuse(format!("not a Qwen3-ASR config: {e}")))?;
    if lacks_positions {
        // Qwen's configs size a longer table, of which each chunk uses its
        // first frames.
        config.audio_config.max_position_embeddings = config.audio_config.frames_per_chunk();
    }
    config.validate().map_err(refuse)?;
    Ok((config, layout))
}

/// transformers' config, the output layer tied as its top-level
/// `tie_word_embeddings` says (transformers 5 ties by it; true by default).
fn from_transformers(value: &Value) -> Value {
    let mut text = value["text_config"].clone();
    let tied = value
        .get("tie_word_embeddings")
        .or_else(|| text.get("tie_word_embeddings"))
        .cloned()
        .unwrap_or(Value::Bool(true));
    if let Some(text) = text.as_object_mut() {
        text.insert("tie_word_embeddings".into(), tied);
    }
    let mut ours = json!({"audio_config": value["audio_config"], "text_config": text});
    if let Some(id) = value.get("audio_token_id") {
        ours["audio_token_id"] = id.clone();
    }
    ours
}

/// Qwen's config lifted out of `thinker_config`: its audio config over
/// Qwen's defaults, the output layer tied as the text config says (else the
/// thinker's or the top-level config; tied by default).
fn from_original(value: &Value, thinker: &Value) -> std::result::Result<Value, String> {
    let section = |name: &str| {
        thinker
            .get(name)
            .and_then(Value::as_object)
            .ok_or_else(|| format!("thinker_config has no {name} object"))
    };
    let mut audio = original_audio_defaults();
    for (key, v) in section("audio_config")? {
        audio[key] = v.clone();
    }
    let mut text = section("text_config")?.clone();
    if !text.contains_key("tie_word_embeddings") {
        let tied = [thinker, value]
            .into_iter()
            .find_map(|c| c.get("tie_word_embeddings"))
            .cloned()
            .unwrap_or(Value::Bool(true));
        text.insert("tie_word_embeddings".into(), tied);
    }
    let mut ours = json!({"audio_config": audio, "text_config": text});
    if let Some(id) = [thinker, value]
        .into_iter()
        .find_map(|c| c.get("audio_token_id"))
    {
        ours["audio_token_id"] = id.clone();
    }
    Ok(ours)
}

/// Where one tensor is: its file (an index into [`Tensors::files`]) and
/// its name there.
pub(super) struct Location {
    pub file: usize,
    pub name: String,
    pub entry: TensorEntry,
}

/// A checkpoint's weight files and its tensors under our names.
pub(super) struct Tensors {
    /// `model.safetensors`, or the index of the shards.
    pub origin: PathBuf,
    pub files: Vec<TensorFile>,
    pub by_name: BTreeMap<String, Location>,
}

impl Tensors {
    /// The file a tensor is in.
    pub fn path(&self, location: &Location) -> &Path {
        self.files[location.file].path()
    }
}

/// The folder's weight files (`model.safetensors`, or the shards its index
/// names), every tensor floating-point, under our names.
pub(super) fn read_tensors(source: &Path, layout: Layout) -> Result<Tensors> {
    let index = source.join("model.safetensors.index.json");
    let single = source.join("model.safetensors");
    let (origin, paths) = if index.is_file() {
        let mut shards: Vec<PathBuf> = weight_map(&index)?.into_values().collect();
        shards.sort();
        shards.dedup();
        (index.clone(), shards)
    } else if single.is_file() {
        (single.clone(), vec![single])
    } else {
        return Err(ConvertError::format(
            source,
            "no model.safetensors or model.safetensors.index.json in the folder",
        ));
    };
    let files = paths
        .iter()
        .map(|p| TensorFile::open(p))
        .collect::<Result<Vec<_>>>()?;
    let mut by_name = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        for (name, entry) in file.entries() {
            if !entry.dtype.is_float() {
                return Err(ConvertError::format(
                    file.path(),
                    format!("{name} is {:?}, expected floats", entry.dtype),
                ));
            }
            let ours = layout.our_name(name);
            let location = Location {
                file: i,
                name: name.clone(),
                entry: entry.clone(),
            };
            if let Some(first) = by_name.insert(ours.clone(), location) {
                return Err(ConvertError::format(
                    file.path(),
                    format!(
                        "{name} is {ours}, which {} already holds (as {})",
                        files[first.file].path().display(),
                        first.name
                    ),
                ));
            }
        }
    }
    if origin == index {
        check_index(&origin, &files, &by_name, layout)?;
    }
    Ok(Tensors {
        origin,
        files,
        by_name,
    })
}

/// Refuses an index that names a tensor its shard lacks.
fn check_index(
    index: &Path,
    files: &[TensorFile],
    by_name: &BTreeMap<String, Location>,
    layout: Layout,
) -> Result<()> {
    for (name, shard) in weight_map(index)? {
        let found = by_name
            .get(&layout.our_name(&name))
            .is_some_and(|l| l.name == name && files[l.file].path() == shard);
        if !found {
            return Err(ConvertError::format(
                index,
                format!("{name} is not in its shard {}", shard.display()),
            ));
        }
    }
    Ok(())
}
