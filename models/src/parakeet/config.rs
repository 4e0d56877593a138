//! The schema of a converted Parakeet folder's `config.json`: the part of
//! NeMo's `model_config.yaml` that inference reads, with NeMo's names, so
//! that the JSON of a NeMo config (what mlx-community's Parakeet repos ship
//! as `config.json`) reads as it is.

use serde::{Deserialize, Serialize};

use super::encoder::AttentionSpan;
use super::features::PreprocessConfig;
use crate::model_config::ModelConfig;
use crate::quantization::Quantization;

/// NeMo's class for a CTC model with a SentencePiece vocabulary.
pub const CTC_TARGET: &str = "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE";
/// NeMo's class for a transducer (RNN-T or TDT) with a SentencePiece vocabulary.
pub const RNNT_TARGET: &str = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel";
/// NeMo's class for a transducer with an auxiliary CTC head.
pub const HYBRID_TARGET: &str =
    "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParakeetConfig {
    /// NeMo's model class, which says which heads the checkpoint has.
    pub target: String,
    pub preprocessor: PreprocessConfig,
    pub encoder: EncoderConfig,
    pub decoder: DecoderConfig,
    /// The transducer's joint network (absent for CTC models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joint: Option<JointConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding: Option<DecodingConfig>,
    /// Where TDT checkpoints also list their durations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_defaults: Option<ModelDefaults>,
    /// The CTC head of a hybrid model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_ctc: Option<AuxCtcConfig>,
    /// How the weights are stored, when quantized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

/// The FastConformer encoder (NeMo's `ConformerEncoder`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// Mel bins in.
    pub feat_in: i32,
    pub n_layers: i32,
    pub d_model: i32,
    pub n_heads: i32,
    pub ff_expansion_factor: i32,
    /// Time reduction of the subsampling convolutions (8 for FastConformer).
    pub subsampling_factor: i32,
    /// `"dw_striding"` for FastConformer.
    pub subsampling: String,
    pub subsampling_conv_channels: i32,
    /// `"rel_pos"` (full attention) or `"rel_pos_local_attn"`.
    pub self_attention_model: String,
    pub conv_kernel_size: i32,
    pub pos_emb_max_len: i32,
    /// Left and right attention context in frames; `[-1, -1]` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub att_context_size: Option<Vec<i32>>,
    #[serde(default)]
    pub causal_downsampling: bool,
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Whether the subsampled input is scaled by `sqrt(d_model)`.
    #[serde(default)]
    pub xscaling: bool,
    /// `"batch_norm"` (folded into the depthwise convolution at load).
    #[serde(default = "batch_norm")]
    pub conv_norm_type: String,
}

fn yes() -> bool {
    true
}

fn batch_norm() -> String {
    "batch_norm".into()
}

impl EncoderConfig {
    /// The keys each frame attends to: local for `"rel_pos_local_attn"`
    /// with two positive `att_context_size` entries (which `validate`
    /// requires of that model), else every frame.
    pub fn attention_span(&self) -> AttentionSpan {
        match (
            self.self_attention_model.as_str(),
            self.att_context_size.as_deref(),
        ) {
            ("rel_pos_local_attn", Some(&[left, right])) if left > 0 && right > 0 => {
                AttentionSpan::Local { left, right }
            }
            _ => AttentionSpan::Full,
        }
    }
}

/// The `decoder` section: the transducer's prediction network, or a CTC
/// model's linear head (NeMo's `ConvASRDecoder`), by the fields present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DecoderConfig {
    Prediction(PredictionConfig),
    Ctc(CtcHeadConfig),
}

/// The transducer's prediction network (NeMo's `RNNTDecoder`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionConfig {
    pub blank_as_pad: bool,
    pub vocab_size: i32,
    pub prednet: PredNetConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredNetConfig {
    pub pred_hidden: i32,
    pub pred_rnn_layers: i32,
}

/// A CTC head: one linear layer (a 1-wide convolution) over encoder frames
/// to the vocabulary plus blank.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CtcHeadConfig {
    pub feat_in: i32,
    /// Tokens without blank; `-1` or `0` means the vocabulary's length.
    pub num_classes: i32,
    pub vocabulary: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuxCtcConfig {
    pub decoder: CtcHeadConfig,
}

/// The transducer's joint network (NeMo's `RNNTJoint`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JointConfig {
    /// Tokens without blank.
    pub num_classes: i32,
    pub vocabulary: Vec<String>,
    pub jointnet: JointNetConfig,
    /// TDT's duration outputs after the token logits.
    #[serde(default)]
    pub num_extra_outputs: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JointNetConfig {
    pub joint_hidden: i32,
    /// `"relu"`, `"tanh"` or `"sigmoid"`.
    pub activation: String,
    pub encoder_hidden: i32,
    pub pred_hidden: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodingConfig {
    /// `"tdt"` for TDT models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// The frame advances TDT's duration head chooses among.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greedy: Option<GreedyConfig>,
}

/// Greedy decoding's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GreedyConfig {
    /// Tokens one encoder frame may emit before decoding moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_symbols: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdt_durations: Option<Vec<i32>>,
}

/// What turns encoder frames into tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    Ctc,
    /// A transducer that emits at most one frame's worth per step.
    Rnnt,
    /// A token-and-duration transducer: each step also says how many frames
    /// to advance, one of `durations`.
    Tdt {
        durations: Vec<i32>,
    },
}

impl ParakeetConfig {
    /// The decoding head the checkpoint's class and sections describe
    /// (a hybrid model decodes with its transducer).
    pub fn head(&self) -> Result<Head, String> {
        let tdt_durations = self
            .model_defaults
            .as_ref()
            .and_then(|d| d.tdt_durations.clone())
            .or_else(|| self.decoding.as_ref().and_then(|d| d.durations.clone()));
        match self.target.as_str() {
            CTC_TARGET => Ok(Head::Ctc),
            RNNT_TARGET | HYBRID_TARGET => Ok(match tdt_durations {
                Some(durations) => Head::Tdt { durations },
                None => Head::Rnnt,
            }),
            other => Err(format!(
                "target {other:?} is not a Parakeet model this program reads \
                 (one of {CTC_TARGET}, {RNNT_TARGET}, {HYBRID_TARGET})"
            )),
        }
    }

    /// The token strings, without blank (whose id is their count).
    pub fn vocabulary(&self) -> &[String] {
        match (&self.joint, &self.decoder) {
            (Some(joint), _) => &joint.vocabulary,
            (None, DecoderConfig::Ctc(ctc)) => &ctc.vocabulary,
            (None, DecoderConfig::Prediction(_)) => &[],
        }
    }

    /// Seconds of audio per encoder frame.
    pub fn seconds_per_frame(&self) -> f64 {
        self.preprocessor.window_stride * self.encoder.subsampling_factor as f64
    }
}

impl ModelConfig for ParakeetConfig {
    const WHAT: &'static str = "a Parakeet (NeMo FastConformer) config";

    fn validate(&self) -> Result<(), String> {
        let head = self.head()?;
        let e = &self.encoder;
        if e.subsampling != "dw_striding" {
            return Err(format!(
                "encoder.subsampling is {:?}; only FastConformer's \"dw_striding\" is supported",
                e.subsampling
            ));
        }
        if !matches!(
            e.self_attention_model.as_str(),
            "rel_pos" | "rel_pos_local_attn"
        ) {
            return Err(format!(
                "encoder.self_attention_model is {:?}; expected \"rel_pos\" or \"rel_pos_local_attn\"",
                e.self_attention_model
            ));
        }
        if e.causal_downsampling {
            return Err(
                "encoder.causal_downsampling is set; only FastConformer's symmetric \
                 dw_striding subsampling is supported"
                    .into(),
            );
        }
        if e.self_attention_model == "rel_pos_local_attn"
            && e.attention_span() == AttentionSpan::Full
        {
            return Err(format!(
                "encoder.att_context_size must be two positive frame counts for local \
                 attention (got {:?})",
                e.att_context_size
            ));
        }
        let sizes = [
            e.feat_in,
            e.n_layers,
            e.d_model,
            e.n_heads,
            e.ff_expansion_factor,
            e.subsampling_factor,
            e.subsampling_conv_channels,
            e.conv_kernel_size,
            e.pos_emb_max_len,
        ];
        if sizes.iter().any(|&s| s <= 0) || e.d_model % e.n_heads != 0 {
            return Err(format!(
                "encoder sizes must be positive with d_model divisible by n_heads: {e:?}"
            ));
        }
        if e.subsampling_factor.count_ones() != 1 || e.conv_kernel_size % 2 == 0 {
            return Err(format!(
                "encoder.subsampling_factor must be a power of two and conv_kernel_size odd \
                 (got {} and {})",
                e.subsampling_factor, e.conv_kernel_size
            ));
        }
        if e.feat_in as usize != self.preprocessor.features {
            return Err(format!(
                "encoder.feat_in ({}) differs from preprocessor.features ({})",
                e.feat_in, self.preprocessor.features
            ));
        }
        if self.vocabulary().is_empty() {
            return Err("the config lists no vocabulary".into());
        }
        match (&head, &self.decoder, &self.joint) {
            (Head::Ctc, DecoderConfig::Ctc(_), _) => {}
            (Head::Rnnt | Head::Tdt { .. }, DecoderConfig::Prediction(_), Some(_)) => {}
            _ => {
                return Err(format!(
                    "target {} needs a {} decoder section{}",
                    self.target,
                    if head == Head::Ctc {
                        "CTC (feat_in, num_classes, vocabulary)"
                    } else {
                        "prediction-network (prednet)"
                    },
                    if head == Head::Ctc {
                        ""
                    } else {
                        " and a joint section"
                    }
                ))
            }
        }
        if let Head::Tdt { durations } = &head {
            if durations.is_empty() || durations.iter().any(|&d| d < 0) {
                return Err(format!("TDT durations must be non-negative: {durations:?}"));
            }
        }
        if let Some(q) = self.quantization {
            q.check().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
