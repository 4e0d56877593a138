//! Speech-recognition model code on MLX arrays.
//!
//! `nn` holds the layers every model here is built from (linear, possibly
//! quantized; layer norm; embedding; 1-D convolution; LSTM), loaded by name
//! from a flat weight map such as a safetensors file. Whisper, the wav2vec2
//! CTC model for alignment, Parakeet's front end (its networks to come) and
//! the Silero voice-activity detector are modules on top, as are the
//! diarizer's networks (pyannote's segmentation, Resemblyzer's speaker
//! encoder).

pub mod features;
pub mod model_config;
pub mod nn;
pub mod parakeet;
pub mod quantization;
pub mod qwen3_asr;
pub mod segmentation;
pub mod silero;
pub mod speaker_encoder;
pub mod wav2vec2;
pub mod weights;
pub mod whisper;

pub use model_config::{LoadError, ModelConfig, ModelFolder};
pub use quantization::{Activations, Quantization, Quantize, QuantizeChoice};
pub use weights::{WeightError, Weights};
