//! NVIDIA's `.nemo` file: a tar, gzip'd by older NeMo versions, holding
//! `model_config.yaml` (the model's config, `target` naming its class) and
//! `model_weights.ckpt` (a torch state dict with NeMo's module names and
//! PyTorch layouts), besides tokenizer files this converter does not need
//! (the vocabulary is in the config).
//!
//! NeMo's module tree is the one parakeet-mlx mirrors, so most names carry
//! over; what differs is the layout of convolutions (channels first), the
//! LSTM's parameters, and buffers that are not weights.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use asr_models::parakeet::ParakeetConfig;
use flate2::read::GzDecoder;
use mlx::Array;

use super::{float_array, parse_config};
use crate::error::{ConvertError, Result};
use crate::state_dict::load_state_dict;
use crate::tensor::RawTensor;

const CONFIG_MEMBER: &str = "model_config.yaml";
const WEIGHTS_MEMBER: &str = "model_weights.ckpt";

/// The config and the weights (parakeet-mlx's names and layouts) of `.nemo`
/// file `path`. The checkpoint is unpacked into `scratch` (a folder that is
/// removed if the conversion fails) for the torch reader.
pub(super) fn read_nemo(
    path: &Path,
    scratch: &Path,
) -> Result<(ParakeetConfig, BTreeMap<String, Array>)> {
    let not_nemo = |e: std::io::Error| {
        ConvertError::format(
            path,
            format!(
                "not a .nemo archive (a tar holding {CONFIG_MEMBER} and {WEIGHTS_MEMBER}): {e}"
            ),
        )
    };
    let mut file = File::open(path).map_err(ConvertError::io(path))?;
    let mut magic = Vec::with_capacity(2);
    (&mut file)
        .take(2)
        .read_to_end(&mut magic)
        .and_then(|_| file.rewind())
        .map_err(ConvertError::io(path))?;
    let reader: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut archive = tar::Archive::new(reader);
    let mut yaml = None;
    let mut checkpoint = None;
    for entry in archive.entries().map_err(not_nemo)? {
        let mut entry = entry.map_err(not_nemo)?;
        let member = entry.path().map_err(not_nemo)?;
        let Some(name) = member.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        match name {
            CONFIG_MEMBER => {
                let mut text = String::new();
                entry.read_to_string(&mut text).map_err(not_nemo)?;
                yaml = Some(text);
            }
            WEIGHTS_MEMBER => {
                let mut unpacked = tempfile::Builder::new()
                    .prefix(".model_weights")
                    .tempfile_in(scratch)
                    .map_err(ConvertError::io(scratch))?;
                std::io::copy(&mut entry, &mut unpacked).map_err(not_nemo)?;
                checkpoint = Some(unpacked);
            }
            _ => {}
        }
    }
    let missing = |member: &str| {
        ConvertError::format(
            path,
            format!("no {member} in the archive: not a .nemo model file"),
        )
    };
    let yaml = yaml.ok_or_else(|| missing(CONFIG_MEMBER))?;
    let checkpoint = checkpoint.ok_or_else(|| missing(WEIGHTS_MEMBER))?;
    let value: serde_json::Value = serde_yaml_ng::from_str(&yaml).map_err(|e| {
        ConvertError::format(path, format!("{CONFIG_MEMBER} is not valid YAML: {e}"))
    })?;
    let config = parse_config(path, CONFIG_MEMBER, value)?;
    // Errors of the torch reader name the unpacked copy; say where it came from.
    let state = load_state_dict(checkpoint.path())
        .map_err(|e| ConvertError::format(path, format!("{WEIGHTS_MEMBER}: {e}")))?;
    let tensors = from_nemo_names(path, state)?;
    Ok((config, tensors))
}

/// The parts of one LSTM layer as PyTorch's `nn.LSTM` names them.
#[derive(Default)]
struct LstmLayer {
    weight_ih: Option<Array>,
    weight_hh: Option<Array>,
    bias_ih: Option<Array>,
    bias_hh: Option<Array>,
}

/// NeMo's state dict under parakeet-mlx's names and layouts: convolution
/// weights channels-last, each LSTM layer as `Wx`, `Wh` and one bias (the
/// sum of PyTorch's two, which are always added), and the feature
/// extractor's buffers, the positional table and batch norm's step counter
/// left out.
pub(super) fn from_nemo_names(
    path: &Path,
    state: BTreeMap<String, RawTensor>,
) -> Result<BTreeMap<String, Array>> {
    let mut out = BTreeMap::new();
    let mut lstm: BTreeMap<(String, usize), LstmLayer> = BTreeMap::new();
    for (name, raw) in state {
        let dropped = name.starts_with("preprocessor.")
            || name.starts_with("encoder.pos_enc.")
            || name.ends_with(".num_batches_tracked");
        if dropped {
            continue;
        }
        let array = float_array(path, &name, &raw)?;
        if let Some((module, part)) = name.split_once(".dec_rnn.lstm.") {
            let unknown = || ConvertError::format(path, format!("`{name}`: not an LSTM parameter"));
            let (kind, layer) = part.rsplit_once("_l").ok_or_else(unknown)?;
            let layer: usize = layer.parse().map_err(|_| unknown())?;
            let slot = lstm
                .entry((format!("{module}.dec_rnn.lstm"), layer))
                .or_default();
            let field = match kind {
                "weight_ih" => &mut slot.weight_ih,
                "weight_hh" => &mut slot.weight_hh,
                "bias_ih" => &mut slot.bias_ih,
                "bias_hh" => &mut slot.bias_hh,
                _ => return Err(unknown()),
            };
            *field = Some(array);
            continue;
        }
        let array = match array.ndim() {
            3 => array.swapaxes(1, 2),
            4 => array.transpose(&[0, 2, 3, 1]),
            _ => Ok(array),
        }
        .map_err(|e| ConvertError::mlx(&name, e))?;
        out.insert(name, array);
    }
    for ((module, layer), parts) in lstm {
        let prefix = format!("{module}.{layer}");
        let part = |value: Option<Array>, what: &str| {
            value.ok_or_else(|| {
                ConvertError::format(
                    path,
                    format!("LSTM layer `{prefix}` has no {what}_l{layer}"),
                )
            })
        };
        let bias = part(parts.bias_ih, "bias_ih")?
            .add(&part(parts.bias_hh, "bias_hh")?)
            .map_err(|e| ConvertError::mlx(&prefix, e))?;
        out.insert(format!("{prefix}.Wx"), part(parts.weight_ih, "weight_ih")?);
        out.insert(format!("{prefix}.Wh"), part(parts.weight_hh, "weight_hh")?);
        out.insert(format!("{prefix}.bias"), bias);
    }
    Ok(out)
}
