//! Whisper's model schema: openai-whisper's `ModelDimensions` and the
//! `config.json` of an MLX Whisper folder, which `pipeline convert` writes
//! and [`super::Whisper::load`] reads (Python mlx-whisper reads it too).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::quantization::Quantization;

/// openai-whisper's `ModelDimensions`, under its key names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperDims {
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
}

impl WhisperDims {
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
        if fields.iter().any(|&d| d <= 0) {
            return Err(format!("a dimension is not positive: {self:?}"));
        }
        if self.n_audio_state % self.n_audio_head != 0 || self.n_text_state % self.n_text_head != 0
        {
            return Err(format!(
                "state sizes are not divisible by the head counts: {self:?}"
            ));
        }
        Ok(())
    }

    /// English-only checkpoints have 51864 tokens; multilingual ones more.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// `config.json` of an MLX Whisper folder: the dimensions, plus the
/// `quantization` of the weights when they are quantized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperConfig {
    #[serde(flatten)]
    pub dims: WhisperDims,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

impl WhisperConfig {
    pub fn load(path: &Path) -> Result<WhisperConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a Whisper config: {e}", path.display()))
    }

    /// The text of `config.json`: keys in sorted order, with the
    /// `model_type` that mlx-whisper's loader expects.
    pub fn to_json(&self) -> String {
        let mut config = serde_json::to_value(self).expect("the config serializes");
        let map = config
            .as_object_mut()
            .expect("the config serializes to an object");
        map.insert("model_type".into(), "whisper".into());
        serde_json::to_string_pretty(&config).expect("the config serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_is_written_as_mlx_whisper_reads_it_and_read_back() {
        let config = WhisperConfig {
            dims: WhisperDims::tiny_en(),
            quantization: Some(Quantization {
                group_size: 64,
                bits: 8,
            }),
        };
        let text = config.to_json();
        assert_eq!(
            text,
            r#"{
  "model_type": "whisper",
  "n_audio_ctx": 1500,
  "n_audio_head": 6,
  "n_audio_layer": 4,
  "n_audio_state": 384,
  "n_mels": 80,
  "n_text_ctx": 448,
  "n_text_head": 6,
  "n_text_layer": 4,
  "n_text_state": 384,
  "n_vocab": 51864,
  "quantization": {
    "bits": 8,
    "group_size": 64
  }
}
"#
        );
        assert_eq!(
            serde_json::from_str::<WhisperConfig>(&text).unwrap(),
            config
        );
        let unquantized = WhisperConfig {
            quantization: None,
            ..config
        };
        assert!(!unquantized.to_json().contains("quantization"));
    }

    #[test]
    fn dimensions_must_be_positive_and_split_into_heads() {
        assert_eq!(WhisperDims::tiny_en().validate(), Ok(()));
        let zero = WhisperDims {
            n_mels: 0,
            ..WhisperDims::tiny_en()
        };
        assert!(zero.validate().is_err());
        let uneven = WhisperDims {
            n_text_head: 5,
            ..WhisperDims::tiny_en()
        };
        assert!(uneven.validate().is_err());
    }
}
