//! "The tensors of this weights file", whatever its format: a PyTorch zip
//! checkpoint, a `.safetensors` file, or a sharded checkpoint's
//! `*.index.json` (Hugging Face layout: `{"weight_map": {tensor: shard}}`,
//! shards beside the index, in either format).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{ConvertError, Result};
use crate::tensor::RawTensor;
use crate::{safetensors, torch};

/// Reads every tensor of a weights file or sharded index. For PyTorch
/// checkpoints that is the state dict (see [`torch::TorchCheckpoint::state_dict`]).
pub fn load_state_dict(path: &Path) -> Result<BTreeMap<String, RawTensor>> {
    let is_index = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"));
    if is_index {
        read_sharded(path)
    } else {
        read_single(path)
    }
}

/// One file, told apart by content: safetensors starts with an 8-byte
/// header length and then the JSON header's `{`; anything else goes to the
/// PyTorch reader, which names zip, legacy and unknown files.
fn read_single(path: &Path) -> Result<BTreeMap<String, RawTensor>> {
    let mut head = Vec::with_capacity(9);
    File::open(path)
        .and_then(|f| f.take(9).read_to_end(&mut head))
        .map_err(ConvertError::io(path))?;
    let named_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if named_safetensors || head.get(8) == Some(&b'{') {
        safetensors::read_safetensors(path)
    } else {
        Ok(torch::read_checkpoint(path)?.state_dict())
    }
}

/// Every tensor of a sharded checkpoint. Each tensor the index lists must be
/// in the shard it names, and no tensor may come from two shards.
fn read_sharded(index: &Path) -> Result<BTreeMap<String, RawTensor>> {
    let weight_map = weight_map(index)?;
    let mut shards: Vec<&PathBuf> = Vec::new();
    for shard in weight_map.values() {
        if !shards.contains(&shard) {
            shards.push(shard);
        }
    }
    let mut all = BTreeMap::new();
    for shard in shards {
        for (name, tensor) in read_single(shard)? {
            if all.insert(name.clone(), tensor).is_some() {
                return Err(ConvertError::format(
                    shard,
                    format!("{name} is also defined by another shard"),
                ));
            }
        }
    }
    if let Some((name, shard)) = weight_map.iter().find(|(n, _)| !all.contains_key(*n)) {
        return Err(ConvertError::format(
            index,
            format!("{name} is not in its shard {}", shard.display()),
        ));
    }
    Ok(all)
}

/// The index's tensor → shard file map, shards resolved beside the index.
pub(crate) fn weight_map(index: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(ConvertError::io(index))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ConvertError::format(index, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ConvertError::format(index, "no `weight_map` object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    map.iter()
        .map(|(name, file)| {
            let file = file.as_str().ok_or_else(|| {
                ConvertError::format(index, format!("{name}: shard name is not a string"))
            })?;
            // An index must not make us read files outside the model folder.
            if file.contains(['/', '\\']) || file == ".." || file.is_empty() {
                return Err(ConvertError::format(
                    index,
                    format!("{name}: shard {file:?} is outside the model folder"),
                ));
            }
            Ok((name.clone(), dir.join(file)))
        })
        .collect()
}

/// The weights of a Hugging Face folder, in the order they are preferred.
const HF_CHECKPOINTS: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The checkpoint file of Hugging Face folder `source`.
pub fn hf_checkpoint(source: &Path) -> Result<PathBuf> {
    HF_CHECKPOINTS
        .iter()
        .map(|name| source.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            ConvertError::format(
                source,
                format!("no {} in the folder", HF_CHECKPOINTS.join(" or ")),
            )
        })
}
