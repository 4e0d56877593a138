//! A recognizer's input features, computed from the audio as it streams.
//! Whisper's log-mel frames live here; another model family's features
//! (e.g. Parakeet's normalized mel) are a sibling module.

mod log_mel;

pub use log_mel::{to_frames, FrameError, MelFrames, MelWindow};
