//! A Hugging Face `Wav2Vec2ForCTC` folder (`config.json` with
//! `model.safetensors` or `pytorch_model.bin`) as an MLX folder that
//! [`asr_models::wav2vec2::Wav2Vec2::load`] reads: `config.json` (the part of
//! the Hugging Face config inference needs) and `weights.safetensors` (f32,
//! Hugging Face's names without the `wav2vec2.` prefix). Convolution weights
//! are stored in MLX's layout `[out, kernel, in / groups]`, and the
//! positional convolution's weight normalization is folded into a plain
//! weight. Pretraining-only tensors (quantizer, masked-frame embedding) are
//! left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::wav2vec2::{FeatExtractNorm, Wav2Vec2Config, MODEL_TYPE};
use asr_models::ModelConfig;
use mlx::{Array, Dtype};
use serde::Deserialize;

use crate::error::{ConvertError, Result};
use crate::state_dict::load_state_dict;
use crate::tensor::RawTensor;
use crate::whisper::{raw_to_array, WriteError};

/// Changes whenever the folder this module writes changes, so that cached
/// conversions are made again.
pub const CONVERTER_VERSION: &str = "wav2vec2-1";

/// The checkpoint files a Hugging Face folder may hold, in preference order.
const CHECKPOINTS: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// What the converted model needs of Hugging Face's `Wav2Vec2Config`; the
/// defaults are `Wav2Vec2Config`'s for keys older configs leave out.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    conv_dim: Vec<i32>,
    conv_kernel: Vec<i32>,
    conv_stride: Vec<i32>,
    #[serde(default)]
    conv_bias: bool,
    #[serde(default = "group")]
    feat_extract_norm: FeatExtractNorm,
    #[serde(default)]
    do_stable_layer_norm: bool,
    hidden_size: i32,
    num_hidden_layers: i32,
    num_attention_heads: i32,
    intermediate_size: i32,
    num_conv_pos_embeddings: i32,
    num_conv_pos_embedding_groups: i32,
    #[serde(default = "layer_norm_eps")]
    layer_norm_eps: f32,
    vocab_size: i32,
    #[serde(default = "gelu")]
    hidden_act: String,
    #[serde(default = "gelu")]
    feat_extract_activation: String,
    #[serde(default)]
    add_adapter: bool,
    #[serde(default)]
    adapter_attn_dim: Option<i32>,
}

fn group() -> FeatExtractNorm {
    FeatExtractNorm::Group
}

fn layer_norm_eps() -> f32 {
    1e-5
}

fn gelu() -> String {
    "gelu".into()
}

impl HfConfig {
    fn read(path: &Path) -> Result<HfConfig> {
        let text = std::fs::read_to_string(path).map_err(ConvertError::io(path))?;
        serde_json::from_str(&text).map_err(|e| {
            ConvertError::format(path, format!("not a Hugging Face wav2vec2 config: {e}"))
        })
    }

    /// Our config, refusing what the model does not implement.
    fn to_config(&self, path: &Path) -> Result<Wav2Vec2Config> {
        let refuse = |message: String| ConvertError::format(path, message);
        if self.hidden_act != "gelu" || self.feat_extract_activation != "gelu" {
            return Err(refuse(format!(
                "activations {:?} / {:?}: only \"gelu\" is implemented",
                self.hidden_act, self.feat_extract_activation
            )));
        }
        if self.add_adapter || self.adapter_attn_dim.is_some() {
            return Err(refuse(
                "add_adapter or adapter_attn_dim is set: adapters are not implemented".into(),
            ));
        }
        let config = Wav2Vec2Config {
            model_type: MODEL_TYPE.into(),
            conv_dim: self.conv_dim.clone(),
            conv_kernel: self.conv_kernel.clone(),
            conv_stride: self.conv_stride.clone(),
            conv_bias: self.conv_bias,
            feat_extract_norm: self.feat_extract_norm,
            do_stable_layer_norm: self.do_stable_layer_norm,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            num_conv_pos_embeddings: self.num_conv_pos_embeddings,
            num_conv_pos_embedding_groups: self.num_conv_pos_embedding_groups,
            layer_norm_eps: self.layer_norm_eps,
            vocab_size: self.vocab_size,
        };
        if self.model_type != MODEL_TYPE {
            return Err(refuse(format!(
                "model_type is {:?}, expected {MODEL_TYPE:?}",
                self.model_type
            )));
        }
        config.validate().map_err(refuse)?;
        Ok(config)
    }
}

/// The checkpoint file in Hugging Face folder `source`.
fn checkpoint(source: &Path) -> Result<PathBuf> {
    CHECKPOINTS
        .iter()
        .map(|name| source.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            ConvertError::format(
                source,
                format!("no {} in the folder", CHECKPOINTS.join(" or ")),
            )
        })
}

/// The positional convolution's weight names: weight normalization over
/// every axis but the kernel's (`dim=2`), as magnitude `g` `[1, 1, K]` and
/// direction `v` `[out, in / groups, K]`, under PyTorch's old and new names.
const POS_CONV: &str = "encoder.pos_conv_embed.conv";
const WEIGHT_NORM_NAMES: [(&str, &str); 2] = [
    ("weight_g", "weight_v"),
    (
        "parametrizations.weight.original0",
        "parametrizations.weight.original1",
    ),
];

/// `g · v / ‖v‖`, the norm taken per kernel tap over output and input
/// channels.
fn fold_weight_norm(g: &Array, v: &Array) -> mlx::Result<Array> {
    let norm = v.square()?.sum(&[0, 1], true)?.sqrt()?;
    v.multiply(&g.divide(&norm)?)
}

/// Writes the MLX folder of Hugging Face folder `source` into the existing
/// folder `out_dir`.
pub fn convert_wav2vec2(source: &Path, out_dir: &Path) -> Result<()> {
    let config_path = source.join("config.json");
    let config = HfConfig::read(&config_path)?.to_config(&config_path)?;
    let checkpoint = checkpoint(source)?;
    let state = load_state_dict(&checkpoint)?;
    let refuse = |message: String| ConvertError::format(&checkpoint, message);
    if !state.contains_key("lm_head.weight") {
        return Err(refuse(
            "no `lm_head.weight`: not a Wav2Vec2ForCTC checkpoint (a CTC head is needed)".into(),
        ));
    }
    let to_array = |name: &str, raw: &RawTensor| -> Result<Array> {
        if !raw.dtype.is_float() {
            return Err(refuse(format!(
                "`{name}` is {:?}, expected floats",
                raw.dtype
            )));
        }
        raw_to_array(raw)
            .and_then(|a| a.astype(Dtype::F32))
            .map_err(|error| mlx_error(name, error))
    };
    let mut tensors = BTreeMap::new();
    for (name, raw) in &state {
        let name = name.strip_prefix("wav2vec2.").unwrap_or(name);
        let kept = [
            "feature_extractor.",
            "feature_projection.",
            "encoder.",
            "lm_head.",
        ]
        .iter()
        .any(|p| name.starts_with(p));
        // The positional convolution's weight, in any of its forms, is
        // added below, folded.
        let pos_weight_part = [".weight", ".parametrizations."]
            .iter()
            .any(|part| name.starts_with(&format!("{POS_CONV}{part}")));
        if kept && !pos_weight_part {
            tensors.insert(name.to_string(), to_array(name, raw)?);
        }
    }
    let pos_weight = pos_conv_weight(&state, &to_array)?.ok_or_else(|| {
        refuse(format!(
            "no positional convolution weight (`{POS_CONV}.weight_g`/`weight_v`, \
             `.parametrizations.weight.original0`/`original1` or `.weight`)"
        ))
    })?;
    tensors.insert(format!("{POS_CONV}.weight"), pos_weight);
    for (name, array) in tensors.iter_mut() {
        if name.ends_with("conv.weight") && array.ndim() == 3 {
            *array = array
                .swapaxes(1, 2)
                .map_err(|error| mlx_error(name, error))?;
        }
    }
    let weights = out_dir.join("weights.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    mlx::io::save_safetensors(&weights, &tensors, &metadata)
        .map_err(|error| mlx_error(&weights.display().to_string(), error))?;
    let out_config = out_dir.join("config.json");
    std::fs::write(&out_config, config.to_json()).map_err(ConvertError::io(&out_config))
}

/// The positional convolution's plain weight `[out, in / groups, K]`,
/// folded from its weight-norm parts when the checkpoint has them; `None`
/// when it has neither.
fn pos_conv_weight(
    state: &BTreeMap<String, RawTensor>,
    to_array: &impl Fn(&str, &RawTensor) -> Result<Array>,
) -> Result<Option<Array>> {
    let find = |suffix: &str| {
        let name = format!("{POS_CONV}.{suffix}");
        state
            .get(&format!("wav2vec2.{name}"))
            .or_else(|| state.get(&name))
            .map(|raw| to_array(&name, raw))
    };
    for (g_name, v_name) in WEIGHT_NORM_NAMES {
        if let (Some(g), Some(v)) = (find(g_name), find(v_name)) {
            return fold_weight_norm(&g?, &v?)
                .map(Some)
                .map_err(|error| mlx_error(POS_CONV, error));
        }
    }
    find("weight").transpose()
}

fn mlx_error(name: &str, error: mlx::Error) -> ConvertError {
    WriteError::Mlx {
        name: name.to_string(),
        error,
    }
    .into()
}
