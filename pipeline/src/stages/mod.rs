//! The stages of a run, one folder each, in the order they run:
//!
//! ```text
//! audio → [vad] → features → recognizer → [align] → [diarize] → output
//! ```
//!
//! Each kind of stage enters through one trait: [`transcribe::Recognizer`]
//! (with its model families registered in [`transcribe::FAMILIES`]),
//! [`vad::VoiceActivity`] (detectors registered in [`vad::DETECTORS`]),
//! and the stages after recognition, [`align::Aligner`] and
//! [`diarize::Diarizer`], which the plan runs as [`TranscriptStage`]s.
//! The plan ([`crate::plan`]) checks that consecutive stages fit together
//! by the [`Data`] they exchange.

pub mod align;
pub mod audio;
pub mod diarize;
pub mod features;
pub mod output;
pub mod transcribe;
pub mod vad;

use crate::transcript::{Progress, Transcript};
use audio::{AudioError, Recording};

/// What flows between stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    /// An audio file path.
    File,
    /// 16 kHz mono samples (CPU: file decoding is inherently CPU work).
    Samples,
    /// A model's input features, e.g. log-mel frames (MLX array).
    Features,
    /// Encoder output (MLX array).
    AudioFeatures,
    Transcript,
    /// Files written in the output formats.
    Outputs,
}

/// One step of a run as the plan shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StageInfo {
    pub name: &'static str,
    /// What does the work, in words (e.g. the model or the hook's name).
    pub implementation: String,
    pub input: Data,
    pub output: Data,
}

impl StageInfo {
    pub fn new(name: &'static str, implementation: String, input: Data, output: Data) -> Self {
        StageInfo {
            name,
            implementation,
            input,
            output,
        }
    }
}

/// What a stage reports when it cannot do its job.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct StageError {
    /// The stage's implementation, e.g. an aligner's name.
    pub stage: String,
    pub message: String,
}

impl StageError {
    /// The recording could not be read again.
    pub fn audio(stage: &str, error: AudioError) -> StageError {
        StageError {
            stage: stage.into(),
            message: error.to_string(),
        }
    }
}

/// A stage after recognition: it reads the whole recording again and
/// changes the transcript (times words, labels speakers, ...). Aligners
/// and diarizers run through this trait; a new kind of post-processing is
/// one more implementation, handed to the plan in order.
pub trait TranscriptStage: Send + Sync {
    fn info(&self) -> StageInfo;
    /// `progress` hears how many seconds of the recording the stage has
    /// read (a stage that reads it whole at once may stay silent).
    fn run(
        &self,
        recording: Recording<'_>,
        transcript: &mut Transcript,
        progress: &dyn Fn(Progress),
    ) -> Result<(), StageError>;
}
