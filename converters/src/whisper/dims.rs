//! Whisper's model dimensions, with openai-whisper's `ModelDimensions` keys
//! (the keys mlx-whisper reads from `config.json`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperDims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_vocab: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
}

/// The subset of a Hugging Face `WhisperConfig` that fixes the dimensions.
#[derive(Deserialize)]
struct HfWhisperConfig {
    num_mel_bins: usize,
    max_source_positions: usize,
    d_model: usize,
    encoder_attention_heads: usize,
    encoder_layers: usize,
    vocab_size: usize,
    max_target_positions: usize,
    decoder_attention_heads: usize,
    decoder_layers: usize,
}

impl WhisperDims {
    /// Reads a Hugging Face `config.json` body.
    pub fn from_hf_config(json: &str) -> Result<WhisperDims, serde_json::Error> {
        let c: HfWhisperConfig = serde_json::from_str(json)?;
        Ok(WhisperDims {
            n_mels: c.num_mel_bins,
            n_audio_ctx: c.max_source_positions,
            n_audio_state: c.d_model,
            n_audio_head: c.encoder_attention_heads,
            n_audio_layer: c.encoder_layers,
            n_vocab: c.vocab_size,
            n_text_ctx: c.max_target_positions,
            n_text_state: c.d_model,
            n_text_head: c.decoder_attention_heads,
            n_text_layer: c.decoder_layers,
        })
    }

    /// Whisper tiny.en, the model the project's tests and default run use.
    pub fn tiny_en() -> WhisperDims {
        WhisperDims {
            n_mels: 80,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_vocab: 51864,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
        }
    }

    /// Checks the relations every Whisper model satisfies.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            self.n_mels,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_vocab,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
        ];
        if fields.contains(&0) {
            return Err(format!("a dimension is zero: {self:?}"));
        }
        if !self.n_audio_state.is_multiple_of(self.n_audio_head)
            || !self.n_text_state.is_multiple_of(self.n_text_head)
        {
            return Err(format!(
                "state sizes are not divisible by the head counts: {self:?}"
            ));
        }
        Ok(())
    }
}
