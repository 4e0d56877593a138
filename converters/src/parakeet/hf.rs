//! A transformers Parakeet folder (`ParakeetForCTC`, `ParakeetForRNNT` or
//! `ParakeetForTDT`): `config.json` (`model_type` `parakeet_ctc`,
//! `parakeet_rnnt` or `parakeet_tdt`, the encoder under `encoder_config`,
//! the prediction network's and joint's sizes beside it), `model.safetensors`
//! or `pytorch_model.bin` (Hugging Face's module names, PyTorch layouts),
//! `tokenizer.json` (the vocabulary; blank is the last id) and
//! `preprocessor_config.json` (the front end; transformers' defaults when
//! absent). transformers ported NeMo's modules one to one and renamed some,
//! so the weights are NeMo's once the names are turned back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::parakeet::config::{
    CtcHeadConfig, DecoderConfig, DecodingConfig, JointConfig, JointNetConfig, ModelDefaults,
    PredNetConfig, PredictionConfig, CTC_TARGET, RNNT_TARGET,
};
use asr_models::parakeet::{
    EncoderConfig, FeatureWindow, Normalization, ParakeetConfig, PreprocessConfig,
};
use asr_models::ModelConfig;
use mlx::Array;
use serde::Deserialize;

use super::nemo::from_nemo_names;
use crate::error::{ConvertError, Result};
use crate::state_dict::{hf_checkpoint, load_state_dict};

/// The `model_type`s of transformers' Parakeet configs.
const CTC: &str = "parakeet_ctc";
const RNNT: &str = "parakeet_rnnt";
const TDT: &str = "parakeet_tdt";

/// The checkpoint files a Hugging Face folder may hold, in preference order.
/// transformers' module names and NeMo's for the same module.
const HF_TO_NEMO: [(&str, &str); 16] = [
    ("encoder.subsampling.layers.", "encoder.pre_encode.conv."),
    ("encoder.subsampling.linear.", "encoder.pre_encode.out."),
    (".conv.norm.", ".conv.batch_norm."),
    ("ctc_head.", "decoder.decoder_layers.0."),
    (".q_proj.", ".linear_q."),
    (".k_proj.", ".linear_k."),
    (".v_proj.", ".linear_v."),
    (".o_proj.", ".linear_out."),
    (".relative_k_proj.", ".linear_pos."),
    (".bias_u", ".pos_bias_u"),
    (".bias_v", ".pos_bias_v"),
    // transformers applies the joint's projection of the prediction
    // network's output in the decoder, and the encoder's in the model.
    ("decoder.embedding.", "decoder.prediction.embed."),
    ("decoder.lstm.", "decoder.prediction.dec_rnn.lstm."),
    ("decoder.decoder_projector.", "joint.pred."),
    ("encoder_projector.", "joint.enc."),
    ("joint.head.", "joint.joint_net.2."),
];

/// What conversion needs of `ParakeetCTCConfig`, `ParakeetRNNTConfig` and
/// `ParakeetTDTConfig`.
#[derive(Deserialize)]
struct HfConfig {
    model_type: String,
    /// Tokens and blank.
    vocab_size: i32,
    /// CTC's blank.
    pad_token_id: Option<i32>,
    /// A transducer's blank.
    blank_token_id: Option<i32>,
    encoder_config: HfEncoder,
    /// The prediction network's width, which is also the joint's.
    decoder_hidden_size: Option<i32>,
    num_decoder_layers: Option<i32>,
    /// The joint's activation.
    hidden_act: Option<String>,
    durations: Option<Vec<i32>>,
}

/// `ParakeetEncoderConfig`, its defaults for keys older files leave out.
#[derive(Deserialize)]
struct HfEncoder {
    hidden_size: i32,
    num_hidden_layers: i32,
    num_attention_heads: i32,
    intermediate_size: i32,
    #[serde(default = "silu")]
    hidden_act: String,
    #[serde(default = "yes")]
    attention_bias: bool,
    #[serde(default = "yes")]
    convolution_bias: bool,
    conv_kernel_size: i32,
    subsampling_factor: i32,
    subsampling_conv_channels: i32,
    num_mel_bins: i32,
    #[serde(default = "three")]
    subsampling_conv_kernel_size: i32,
    #[serde(default = "two")]
    subsampling_conv_stride: i32,
    max_position_embeddings: i32,
    #[serde(default = "yes")]
    scale_input: bool,
}

/// `ParakeetFeatureExtractor`'s settings, with its defaults.
#[derive(Deserialize)]
struct HfFeatures {
    #[serde(default = "sixteen_k")]
    sampling_rate: usize,
    feature_size: Option<usize>,
    #[serde(default = "hop")]
    hop_length: usize,
    #[serde(default = "win")]
    win_length: usize,
    #[serde(default = "n_fft")]
    n_fft: usize,
    #[serde(default = "preemphasis")]
    preemphasis: Option<f64>,
    #[serde(default)]
    padding_value: f64,
}

fn silu() -> String {
    "silu".into()
}
fn yes() -> bool {
    true
}
fn three() -> i32 {
    3
}
fn two() -> i32 {
    2
}
fn sixteen_k() -> usize {
    16000
}
fn hop() -> usize {
    160
}
fn win() -> usize {
    400
}
fn n_fft() -> usize {
    512
}
fn preemphasis() -> Option<f64> {
    Some(0.97)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(ConvertError::io(path))?;
    serde_json::from_str(&text).map_err(|e| ConvertError::format(path, format!("not {what}: {e}")))
}

/// The config and weights (parakeet-mlx's names and layouts) of the
/// transformers folder `source`.
pub(super) fn read_hf_ctc(source: &Path) -> Result<(ParakeetConfig, BTreeMap<String, Array>)> {
    let config_path = source.join("config.json");
    let hf: HfConfig = read_json(&config_path, "a transformers Parakeet CTC config")?;
    let refuse = |message: String| ConvertError::format(&config_path, message);
    let blank = hf.vocab_size - 1;
    let (blank_name, blank_id) = match hf.model_type.as_str() {
        CTC => ("pad_token_id", hf.pad_token_id),
        RNNT | TDT => ("blank_token_id", hf.blank_token_id),
        other => {
            return Err(refuse(format!(
                "model_type is {other:?}; expected one of transformers' Parakeet models \
                 ({CTC:?}, {RNNT:?}, {TDT:?})"
            )))
        }
    };
    if blank_id.is_some_and(|id| id != blank) {
        return Err(refuse(format!(
            "{blank_name} (the blank) is {blank_id:?}, expected the last id {blank}"
        )));
    }
    let encoder = encoder_config(&hf.encoder_config).map_err(refuse)?;
    let preprocessor = preprocessor_config(source, encoder.feat_in)?;
    let vocabulary = vocabulary(&source.join("tokenizer.json"), blank)?;
    let mut config = ParakeetConfig {
        target: CTC_TARGET.into(),
        preprocessor,
        decoder: DecoderConfig::Ctc(CtcHeadConfig {
            feat_in: encoder.d_model,
            num_classes: vocabulary.len() as i32,
            vocabulary: vocabulary.clone(),
        }),
        encoder,
        joint: None,
        decoding: None,
        model_defaults: None,
        aux_ctc: None,
        quantization: None,
    };
    if hf.model_type != CTC {
        transducer(&hf, &mut config, vocabulary).map_err(refuse)?;
    }
    config
        .validate()
        .map_err(|e| ConvertError::format(&config_path, e))?;
    let checkpoint = hf_checkpoint(source)?;
    let state = load_state_dict(&checkpoint)?
        .into_iter()
        .map(|(name, raw)| (nemo_name(&name), raw))
        .collect();
    Ok((config, from_nemo_names(&checkpoint, state)?))
}

/// Makes `config` NeMo's transducer (TDT when `hf` lists durations) with
/// transformers' prediction network and joint, whose hidden widths are one.
fn transducer(
    hf: &HfConfig,
    config: &mut ParakeetConfig,
    vocabulary: Vec<String>,
) -> std::result::Result<(), String> {
    let missing = |key: &str| format!("no {key} in a transducer's config");
    let hidden = hf
        .decoder_hidden_size
        .ok_or_else(|| missing("decoder_hidden_size"))?;
    let layers = hf
        .num_decoder_layers
        .ok_or_else(|| missing("num_decoder_layers"))?;
    let tokens = vocabulary.len() as i32;
    let durations = match (hf.model_type.as_str(), &hf.durations) {
        (TDT, Some(d)) => Some(d.clone()),
        (TDT, None) => return Err(missing("durations")),
        _ => None,
    };
    config.target = RNNT_TARGET.into();
    config.decoder = DecoderConfig::Prediction(PredictionConfig {
        blank_as_pad: true,
        vocab_size: tokens,
        prednet: PredNetConfig {
            pred_hidden: hidden,
            pred_rnn_layers: layers,
        },
    });
    config.joint = Some(JointConfig {
        num_classes: tokens,
        vocabulary,
        jointnet: JointNetConfig {
            joint_hidden: hidden,
            activation: hf.hidden_act.clone().unwrap_or_else(|| "relu".into()),
            encoder_hidden: config.encoder.d_model,
            pred_hidden: hidden,
        },
        num_extra_outputs: durations.as_ref().map_or(0, |d| d.len() as i32),
    });
    if let Some(durations) = durations {
        config.decoding = Some(DecodingConfig {
            model_type: Some("tdt".into()),
            durations: Some(durations.clone()),
            greedy: None,
        });
        config.model_defaults = Some(ModelDefaults {
            tdt_durations: Some(durations),
        });
    }
    Ok(())
}

/// NeMo's name of transformers' tensor `name`.
fn nemo_name(name: &str) -> String {
    HF_TO_NEMO
        .iter()
        .fold(name.to_string(), |name, (hf, nemo)| name.replace(hf, nemo))
}

/// NeMo's encoder section for transformers' encoder config, refusing what
/// the two do not share.
fn encoder_config(e: &HfEncoder) -> std::result::Result<EncoderConfig, String> {
    if e.hidden_act != "silu" {
        return Err(format!(
            "encoder_config.hidden_act is {:?}; FastConformer's is \"silu\"",
            e.hidden_act
        ));
    }
    if e.attention_bias != e.convolution_bias {
        return Err("attention_bias and convolution_bias differ; NeMo has one use_bias".into());
    }
    if (e.subsampling_conv_kernel_size, e.subsampling_conv_stride) != (3, 2) {
        return Err(format!(
            "subsampling convolutions of kernel {} and stride {}; dw_striding's are 3 and 2",
            e.subsampling_conv_kernel_size, e.subsampling_conv_stride
        ));
    }
    if e.hidden_size <= 0 || e.intermediate_size % e.hidden_size != 0 {
        return Err(format!(
            "intermediate_size {} is not a multiple of hidden_size {}",
            e.intermediate_size, e.hidden_size
        ));
    }
    Ok(EncoderConfig {
        feat_in: e.num_mel_bins,
        n_layers: e.num_hidden_layers,
        d_model: e.hidden_size,
        n_heads: e.num_attention_heads,
        ff_expansion_factor: e.intermediate_size / e.hidden_size,
        subsampling_factor: e.subsampling_factor,
        subsampling: "dw_striding".into(),
        subsampling_conv_channels: e.subsampling_conv_channels,
        self_attention_model: "rel_pos".into(),
        conv_kernel_size: e.conv_kernel_size,
        pos_emb_max_len: e.max_position_embeddings,
        att_context_size: None,
        causal_downsampling: false,
        use_bias: e.attention_bias,
        xscaling: e.scale_input,
        conv_norm_type: "batch_norm".into(),
    })
}

/// NeMo's preprocessor section for the folder's feature extractor: Hann
/// windows and per-feature normalization, which transformers' always uses.
fn preprocessor_config(source: &Path, mel_bins: i32) -> Result<PreprocessConfig> {
    let path: PathBuf = source.join("preprocessor_config.json");
    let f: HfFeatures = if path.is_file() {
        read_json(&path, "a Parakeet feature extractor config")?
    } else {
        serde_json::from_str("{}").expect("every field has a default")
    };
    let features = f.feature_size.unwrap_or(mel_bins as usize);
    if features != mel_bins as usize {
        return Err(ConvertError::format(
            &path,
            format!("feature_size {features} differs from the encoder's num_mel_bins {mel_bins}"),
        ));
    }
    let rate = f.sampling_rate as f64;
    Ok(PreprocessConfig {
        sample_rate: f.sampling_rate,
        normalize: Normalization::PerFeature,
        window_size: f.win_length as f64 / rate,
        window_stride: f.hop_length as f64 / rate,
        window: FeatureWindow::Hann,
        features,
        n_fft: f.n_fft,
        dither: 0.0,
        pad_to: 0,
        pad_value: f.padding_value,
        preemph: f.preemphasis,
        mag_power: 2.0,
    })
}

/// The token strings of ids `0..blank` in `tokenizer.json`: the model's
/// vocabulary (a list of `[piece, score]` for Unigram, a piece-to-id map
/// otherwise) and the added tokens.
fn vocabulary(path: &Path, blank: i32) -> Result<Vec<String>> {
    let json: serde_json::Value = read_json(path, "a tokenizers tokenizer.json")?;
    let refuse = |message: String| ConvertError::format(path, message);
    let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
    match json.pointer("/model/vocab") {
        Some(serde_json::Value::Array(pieces)) => {
            for (id, piece) in pieces.iter().enumerate() {
                let text = piece.get(0).and_then(|p| p.as_str()).ok_or_else(|| {
                    refuse(format!("model.vocab[{id}] is not a [piece, score] pair"))
                })?;
                by_id.insert(id as i64, text.to_string());
            }
        }
        Some(serde_json::Value::Object(pieces)) => {
            for (text, id) in pieces {
                let id = id
                    .as_i64()
                    .ok_or_else(|| refuse(format!("model.vocab[{text:?}] is not an id")))?;
                by_id.insert(id, text.clone());
            }
        }
        _ => return Err(refuse("no model.vocab list or map".into())),
    }
    for added in json
        .get("added_tokens")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(text)) = (
            added.get("id").and_then(|i| i.as_i64()),
            added.get("content").and_then(|c| c.as_str()),
        ) {
            by_id.insert(id, text.to_string());
        }
    }
    (0..blank as i64)
        .map(|id| {
            by_id.remove(&id).ok_or_else(|| {
                refuse(format!(
                    "no token with id {id}; the model's {blank} tokens before blank need one each"
                ))
            })
        })
        .collect()
}
