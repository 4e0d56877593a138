//! A converted Qwen3-ASR folder's `config.json`: transformers'
//! `Qwen3ASRConfig` layout (`audio_config`, `text_config`,
//! `audio_token_id`), plus `quantization` when the weights are quantized.

use serde::{Deserialize, Serialize};

use super::audio_config::AudioConfig;
use super::text_config::TextConfig;
use crate::quantization::Quantization;
use crate::ModelConfig;

/// The token whose embeddings the audio encoder's outputs replace, when a
/// config names none (Qwen's tokenizer's `<|audio_pad|>`).
const DEFAULT_AUDIO_TOKEN_ID: i32 = 151_676;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Qwen3AsrConfig {
    pub audio_config: AudioConfig,
    pub text_config: TextConfig,
    #[serde(default = "default_audio_token_id")]
    pub audio_token_id: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

fn default_audio_token_id() -> i32 {
    DEFAULT_AUDIO_TOKEN_ID
}

impl ModelConfig for Qwen3AsrConfig {
    const WHAT: &'static str = "a Qwen3-ASR config";

    fn validate(&self) -> Result<(), String> {
        self.audio_config.validate()?;
        self.text_config.validate()?;
        let (audio, text) = (&self.audio_config, &self.text_config);
        if audio.output_dim as i32 != text.hidden_size {
            return Err(format!(
                "the audio encoder's output_dim {} differs from the text model's hidden_size {}",
                audio.output_dim, text.hidden_size
            ));
        }
        if !(0..text.vocab_size).contains(&self.audio_token_id) {
            return Err(format!(
                "audio_token_id {} is outside the vocabulary of {}",
                self.audio_token_id, text.vocab_size
            ));
        }
        if let Some(q) = self.quantization {
            q.check().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
