//! Checkpoint readers and the writer of MLX model folders.
//!
//! Readers turn published formats into [`RawTensor`]s (host bytes); the
//! Whisper module maps them onto one canonical layout and writes MLX weights;
//! the voice-activity and speaker models (`silero`, `segmentation`,
//! `speaker_encoder`), the wav2vec2 CTC model (`wav2vec2`), Parakeet
//! (`parakeet`) and Qwen3-ASR (`qwen3_asr`) have a converter each.

pub mod atomic;
pub mod cache_lock;
pub mod convert;
pub mod ct2;
pub mod error;
mod expected;
pub mod hub;
pub mod onnx;
pub mod out_folder;
pub mod parakeet;
pub mod pickle;
pub mod qwen3_asr;
pub mod registry;
pub mod safetensors;
pub mod segmentation;
pub mod silero;
pub mod speaker_encoder;
pub mod state_dict;
pub mod tensor;
pub mod tiktoken;
pub mod torch;
pub mod wav2vec2;
pub mod whisper;

pub use error::{ConvertError, Result};
pub use state_dict::load_state_dict;
pub use tensor::{RawTensor, TensorDtype};
