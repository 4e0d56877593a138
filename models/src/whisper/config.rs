//! `config.json` of an MLX Whisper folder: openai-whisper's ModelDimensions
//! plus the optional `quantization` that `pipeline convert` writes.

use std::path::Path;

use serde::Deserialize;

use crate::weights::QuantConfig;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WhisperConfig {
    pub n_mels: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_vocab: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    #[serde(default)]
    pub quantization: Option<QuantConfig>,
}

impl WhisperConfig {
    pub fn load(path: &Path) -> Result<WhisperConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a Whisper config: {e}", path.display()))
    }

    /// English-only checkpoints have 51864 tokens; multilingual ones more.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}
