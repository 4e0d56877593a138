//! The text model's configuration, under Hugging Face's names (the
//! `text_config` of a Qwen3-ASR checkpoint), keeping what inference reads.

use serde::{Deserialize, Serialize};

/// Rotary embedding settings as transformers writes them (`rope_parameters`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RopeParameters {
    pub rope_theta: f32,
}

/// A Qwen3 decoder's dimensions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextConfig {
    pub vocab_size: i32,
    pub hidden_size: i32,
    pub intermediate_size: i32,
    pub num_hidden_layers: i32,
    pub num_attention_heads: i32,
    pub num_key_value_heads: i32,
    pub head_dim: i32,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f32,
    /// The RoPE base of older configs, at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// The output layer is the embedding table (Qwen3-ASR's default).
    #[serde(default = "default_tie_word_embeddings")]
    pub tie_word_embeddings: bool,
}

fn default_rms_norm_eps() -> f32 {
    1e-6
}

fn default_tie_word_embeddings() -> bool {
    true
}

/// Qwen3's RoPE base when a config names none.
const DEFAULT_ROPE_THETA: f32 = 1_000_000.0;

impl TextConfig {
    /// Values the decoder cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ];
        if let Some((name, value)) = sizes.iter().find(|(_, v)| *v <= 0) {
            return Err(format!("{name} must be positive, not {value}"));
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim % 2 != 0 {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim));
        }
        Ok(())
    }

    /// The RoPE base: `rope_parameters.rope_theta`, else `rope_theta`.
    pub fn rope_base(&self) -> f32 {
        self.rope_parameters
            .as_ref()
            .map(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(DEFAULT_ROPE_THETA)
    }
}
