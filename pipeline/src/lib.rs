//! The speech pipeline around the models: configuration, audio input, the
//! transcription loop and the output writers.

pub mod audio;
pub mod config;
pub mod decode_options;
pub mod graph;
pub mod hooks;
pub mod mel_frames;
pub mod model_source;
pub mod output;
pub mod pipeline;
pub mod regress;
pub mod transcriber;
pub mod vad;
pub mod wer;
pub mod word_timestamps;

pub use asr_models::{Activations, Quantization, Quantize};
pub use config::{Config, DeviceName, Format};
pub use decode_options::{DecodeOptions, Task};
pub use hooks::{AlignmentHook, DiarizationHook, HookError, SpeakerTurn, Word};
pub use model_source::resolve_model;
pub use output::{Segment, Timings, Transcript};
pub use pipeline::{Pipeline, PipelineBuilder, PipelineError};
pub use transcriber::{Progress, Transcriber};
