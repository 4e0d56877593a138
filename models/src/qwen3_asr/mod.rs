//! Qwen3-ASR on MLX: an audio encoder (conv2d stem over 128-band log-mel,
//! transformer layers with block attention over chunked mel, a projector)
//! feeding a Qwen3 decoder (RMSNorm, per-head Q/K norm, RoPE, grouped-query
//! attention, SwiGLU), decoded like a chat model.

pub mod audio_config;
pub mod audio_encoder;
pub mod config;
pub mod features;
pub mod kv_cache;
pub mod model;
pub mod prompt;
pub mod text_config;
pub mod text_decoder;
pub mod tokenizer;

pub use config::Qwen3AsrConfig;
pub use model::{EncoderCache, PhaseTimes, Qwen3Asr, Request, Transcript};
