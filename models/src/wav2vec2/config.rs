//! The schema of a converted wav2vec2 folder's `config.json`: the part of
//! Hugging Face's `Wav2Vec2Config` that inference reads, with its names.

use crate::model_config::ModelConfig;
use serde::{Deserialize, Serialize};

/// What `model_type` says in the `config.json` of a converted wav2vec2.
pub const MODEL_TYPE: &str = "wav2vec2";

/// How the convolutional feature encoder normalizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatExtractNorm {
    /// wav2vec2-base: group norm with one group per channel after the first
    /// convolution only.
    Group,
    /// large / lv60: layer norm over channels after every convolution.
    Layer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wav2Vec2Config {
    pub model_type: String,
    /// Output channels of each feature-encoder convolution.
    pub conv_dim: Vec<i32>,
    pub conv_kernel: Vec<i32>,
    pub conv_stride: Vec<i32>,
    pub conv_bias: bool,
    pub feat_extract_norm: FeatExtractNorm,
    /// Pre-LN transformer layers with a final layer norm (large / lv60)
    /// rather than post-LN layers after an input layer norm (base).
    pub do_stable_layer_norm: bool,
    pub hidden_size: i32,
    pub num_hidden_layers: i32,
    pub num_attention_heads: i32,
    pub intermediate_size: i32,
    /// Kernel of the positional convolution.
    pub num_conv_pos_embeddings: i32,
    pub num_conv_pos_embedding_groups: i32,
    pub layer_norm_eps: f32,
    pub vocab_size: i32,
}

impl Wav2Vec2Config {
    /// Input samples per output frame.
    pub fn samples_per_frame(&self) -> i32 {
        self.conv_stride.iter().product()
    }
}

impl ModelConfig for Wav2Vec2Config {
    const WHAT: &'static str = "a wav2vec2 config";

    fn validate(&self) -> Result<(), String> {
        if self.model_type != MODEL_TYPE {
            return Err(format!(
                "model_type is {:?}, expected {MODEL_TYPE:?}",
                self.model_type
            ));
        }
        let layers = self.conv_dim.len();
        if layers == 0 || self.conv_kernel.len() != layers || self.conv_stride.len() != layers {
            return Err(format!(
                "conv_dim, conv_kernel and conv_stride differ in length or are empty: {:?}, {:?}, {:?}",
                self.conv_dim, self.conv_kernel, self.conv_stride
            ));
        }
        let sizes = [
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.intermediate_size,
            self.num_conv_pos_embeddings,
            self.num_conv_pos_embedding_groups,
            self.vocab_size,
        ];
        let convs = self
            .conv_dim
            .iter()
            .chain(&self.conv_kernel)
            .chain(&self.conv_stride);
        if sizes.iter().chain(convs).any(|&s| s <= 0) {
            return Err(format!("a size is not positive: {self:?}"));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.hidden_size % self.num_conv_pos_embedding_groups != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_conv_pos_embedding_groups {}",
                self.hidden_size, self.num_conv_pos_embedding_groups
            ));
        }
        if !self.layer_norm_eps.is_finite() || self.layer_norm_eps <= 0.0 {
            return Err(format!(
                "layer_norm_eps {} is not positive",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wav2vec2-base's settings (Hugging Face's `Wav2Vec2Config()`).
    fn base() -> Wav2Vec2Config {
        Wav2Vec2Config {
            model_type: MODEL_TYPE.into(),
            conv_dim: vec![512; 7],
            conv_kernel: vec![10, 3, 3, 3, 3, 2, 2],
            conv_stride: vec![5, 2, 2, 2, 2, 2, 2],
            conv_bias: false,
            feat_extract_norm: FeatExtractNorm::Group,
            do_stable_layer_norm: false,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            num_conv_pos_embeddings: 128,
            num_conv_pos_embedding_groups: 16,
            layer_norm_eps: 1e-5,
            vocab_size: 32,
        }
    }

    #[test]
    fn base_has_20_ms_frames_and_round_trips_through_json() {
        let config = base();
        config.validate().unwrap();
        assert_eq!(config.samples_per_frame(), 320);
        let back: Wav2Vec2Config = serde_json::from_str(&config.to_json()).unwrap();
        assert_eq!(back, config);
        assert!(config
            .to_json()
            .contains("\"feat_extract_norm\": \"group\""));
    }

    #[test]
    fn convolution_lists_of_different_lengths_are_refused() {
        let config = Wav2Vec2Config {
            conv_stride: vec![5, 2],
            ..base()
        };
        let err = config.validate().unwrap_err();
        assert!(err.contains("differ in length"), "{err}");
    }
}
