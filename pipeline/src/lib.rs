//! The speech pipeline around the models: a run is a plan of stages built
//! from one configuration and checked before any audio is read,
//!
//! ```text
//! audio → [vad] → features → recognizer → [align] → [diarize] → output
//! ```
//!
//! - [`config`]: the TOML file behind `pipeline run` (and `[decode]`);
//! - [`plan`]: the stages a configuration runs, validated in one pass;
//! - [`stages`]: one folder per stage, each entering through one trait;
//! - [`transcript`]: what the stages produce;
//! - [`Pipeline`]: the loaded plan, for embedding;
//! - [`regress`]: snapshot regression runs; [`wer`]: word error rates;
//!   [`der`]: diarization error rates.

pub mod config;
pub mod der;
pub mod model_source;
mod panic_guard;
mod pipeline;
pub mod plan;
pub mod regress;
pub mod stages;
pub mod stream;
pub mod transcript;
pub mod wer;

pub use asr_models::{Activations, Quantization, Quantize, QuantizeChoice};
pub use config::decode::{DecodeOptions, Task};
pub use config::{Config, DeviceName};
pub use model_source::resolve_model;
pub use panic_guard::InternalError;
pub use pipeline::{Pipeline, PipelineBuilder, PipelineError};
pub use stages::align::Aligner;
pub use stages::diarize::Diarizer;
pub use stages::output::Format;
pub use stages::transcribe::whisper::WhisperTranscriber;
pub use stages::transcribe::Recognizer;
pub use stages::{StageError, StageInfo, TranscriptStage};
pub use transcript::{Progress, Segment, SpeakerTurn, Timings, Transcript, Word};
