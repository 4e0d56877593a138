//! wav2vec2 CTC checkpoints as an MLX folder that
//! [`asr_models::wav2vec2::Wav2Vec2::load`] reads: `config.json` (the part of
//! the Hugging Face config inference needs), `weights.safetensors` (f32,
//! Hugging Face's names without the `wav2vec2.` prefix) and, when the
//! checkpoint comes with one, `vocab.json` (each CTC output's token, as a
//! `{"token": id}` object). Convolution weights are stored in MLX's layout
//! `[out, kernel, in / groups]`, and the positional convolution's weight
//! normalization is folded into a plain weight. Pretraining-only tensors
//! (quantizer, masked-frame embedding) are left out.
//!
//! Two sources: a Hugging Face `Wav2Vec2ForCTC` folder (`config.json`,
//! `model.safetensors` or `pytorch_model.bin`, `vocab.json`), and the state
//! dict of a torchaudio wav2vec2 model (`torchaudio.pipelines`' ASR
//! bundles), whose names are mapped to Hugging Face's, whose config is read
//! off its tensors' shapes, and whose labels are given.

use std::collections::BTreeMap;
use std::path::Path;

use asr_models::wav2vec2::{FeatExtractNorm, Wav2Vec2Config, MODEL_TYPE};
use asr_models::ModelConfig;
use mlx::{Array, Dtype};
use serde::Deserialize;

use crate::error::{ConvertError, Result};
use crate::state_dict::{hf_checkpoint, load_state_dict};
use crate::tensor::RawTensor;
use crate::whisper::{raw_to_array, WriteError};

/// Changes whenever the folder this module writes changes, so that cached
/// conversions are made again.
pub const CONVERTER_VERSION: &str = "wav2vec2-2";

/// The vocabulary file of a Hugging Face folder and of ours.
pub const VOCAB_FILE: &str = "vocab.json";

/// The labels of torchaudio's English ASR bundles
/// (`WAV2VEC2_ASR_BASE_960H` and its base/large/lv60k siblings), in output
/// order; `-` is the blank.
pub const TORCHAUDIO_ENGLISH_LABELS: [&str; 29] = [
    "-", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M", "W", "C", "F", "G",
    "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z",
];

/// Each CTC output's token, by token.
pub type Vocabulary = BTreeMap<String, usize>;

/// The checkpoint files a Hugging Face folder may hold, in preference order.
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
/// folder `out_dir`; its `vocab.json` is copied when it has one.
pub fn convert_wav2vec2(source: &Path, out_dir: &Path) -> Result<()> {
    let config_path = source.join("config.json");
    let config = HfConfig::read(&config_path)?.to_config(&config_path)?;
    let checkpoint = hf_checkpoint(source)?;
    let state = load_state_dict(&checkpoint)?;
    let vocab_path = source.join(VOCAB_FILE);
    let vocab = if vocab_path.is_file() {
        Some(read_vocabulary(&vocab_path)?)
    } else {
        None
    };
    write_folder(&config, &state, &checkpoint, vocab.as_ref(), out_dir)
}

/// Reads a `{"token": id}` vocabulary (Hugging Face's `vocab.json`, ours).
pub fn read_vocabulary(path: &Path) -> Result<Vocabulary> {
    let text = std::fs::read_to_string(path).map_err(ConvertError::io(path))?;
    serde_json::from_str(&text).map_err(|e| {
        ConvertError::format(
            path,
            format!("not a character vocabulary ({{\"token\": id, ...}}): {e}"),
        )
    })
}

/// Writes the MLX folder of torchaudio wav2vec2 state dict `state_dict`
/// (a torch file of `model.state_dict()`, with the CTC head `aux`) into the
/// existing folder `out_dir`, `labels` being its outputs' tokens in order.
///
/// A state dict holds no config; it is read off the tensors, with what
/// every torchaudio wav2vec2 model shares: 64-dimensional attention heads,
/// feature-encoder strides of 5 for the first (kernel 10) convolution and 2
/// after it, and pre-LN transformer layers exactly when the feature encoder
/// layer-normalizes every convolution (large-lv60k, XLSR) rather than
/// group-normalizing the first (base, large).
pub fn convert_torchaudio_wav2vec2(
    state_dict: &Path,
    labels: &[&str],
    out_dir: &Path,
) -> Result<()> {
    let state: BTreeMap<String, RawTensor> = load_state_dict(state_dict)?
        .into_iter()
        .map(|(name, tensor)| (hf_name(&name), tensor))
        .collect();
    let config =
        torchaudio_config(&state, labels.len()).map_err(|m| ConvertError::format(state_dict, m))?;
    let vocab: Vocabulary = labels
        .iter()
        .enumerate()
        .map(|(id, label)| (label.to_string(), id))
        .collect();
    write_folder(&config, &state, state_dict, Some(&vocab), out_dir)
}

/// Hugging Face's name for a torchaudio wav2vec2 tensor (of the model, or
/// of the bundle's wrapper around it, which prefixes `model.`).
fn hf_name(name: &str) -> String {
    let name = name.strip_prefix("model.").unwrap_or(name);
    for (torchaudio, hf) in [
        ("encoder.feature_projection.", "feature_projection."),
        ("encoder.transformer.", "encoder."),
        ("aux.", "lm_head."),
    ] {
        if let Some(rest) = name.strip_prefix(torchaudio) {
            return format!("{hf}{rest}");
        }
    }
    name.to_string()
}

/// The config of a torchaudio model, its tensors under Hugging Face's names.
fn torchaudio_config(
    state: &BTreeMap<String, RawTensor>,
    labels: usize,
) -> std::result::Result<Wav2Vec2Config, String> {
    let shape = |name: &str| {
        state
            .get(name)
            .map(|t| t.shape.iter().map(|&d| d as i32).collect::<Vec<i32>>())
            .ok_or_else(|| format!("no `{name}`: not a torchaudio wav2vec2 CTC state dict"))
    };
    let conv = |i: usize| format!("feature_extractor.conv_layers.{i}");
    let mut conv_dim = Vec::new();
    let mut conv_kernel = Vec::new();
    while let Ok(weight) = shape(&format!("{}.conv.weight", conv(conv_dim.len()))) {
        conv_dim.push(weight[0]);
        conv_kernel.push(weight.get(2).copied().unwrap_or(0));
    }
    let conv_stride = conv_kernel
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { 5 } else { 2 })
        .collect();
    let layer_norms = state.contains_key(&format!("{}.layer_norm.weight", conv(1)));
    let hidden_size = shape("feature_projection.projection.weight")?[0];
    let num_hidden_layers = (0..)
        .take_while(|i| state.contains_key(&format!("encoder.layers.{i}.final_layer_norm.weight")))
        .count() as i32;
    let intermediate_size = shape("encoder.layers.0.feed_forward.intermediate_dense.weight")?[0];
    let pos_weight = shape(&format!("{POS_CONV}.parametrizations.weight.original1"))
        .or_else(|_| shape(&format!("{POS_CONV}.weight_v")))
        .or_else(|_| shape(&format!("{POS_CONV}.weight")))?;
    let vocab_size = shape("lm_head.weight")?[0];
    if vocab_size as usize != labels {
        return Err(format!(
            "the CTC head `aux` has {vocab_size} outputs but {labels} labels are given"
        ));
    }
    let config = Wav2Vec2Config {
        model_type: MODEL_TYPE.into(),
        conv_dim,
        conv_kernel,
        conv_stride,
        conv_bias: state.contains_key(&format!("{}.conv.bias", conv(0))),
        feat_extract_norm: if layer_norms {
            FeatExtractNorm::Layer
        } else {
            FeatExtractNorm::Group
        },
        do_stable_layer_norm: layer_norms,
        hidden_size,
        num_hidden_layers,
        num_attention_heads: (hidden_size / 64).max(1),
        intermediate_size,
        num_conv_pos_embeddings: pos_weight[2],
        num_conv_pos_embedding_groups: hidden_size / pos_weight[1].max(1),
        layer_norm_eps: 1e-5,
        vocab_size,
    };
    config.validate()?;
    Ok(config)
}

/// Writes `state` (Hugging Face's names, with or without the `wav2vec2.`
/// prefix; read from `checkpoint`) as the MLX folder of `config` into
/// `out_dir`, with `vocab` when given.
fn write_folder(
    config: &Wav2Vec2Config,
    state: &BTreeMap<String, RawTensor>,
    checkpoint: &Path,
    vocab: Option<&Vocabulary>,
    out_dir: &Path,
) -> Result<()> {
    let refuse = |message: String| ConvertError::format(checkpoint, message);
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
    for (name, raw) in state {
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
    let pos_weight = pos_conv_weight(state, &to_array)?.ok_or_else(|| {
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
    if let Some(vocab) = vocab {
        let out_vocab = out_dir.join(VOCAB_FILE);
        let text = serde_json::to_string_pretty(vocab)
            .map_err(|e| ConvertError::format(&out_vocab, e.to_string()))?;
        std::fs::write(&out_vocab, text).map_err(ConvertError::io(&out_vocab))?;
    }
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
