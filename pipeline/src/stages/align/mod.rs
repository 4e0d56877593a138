//! Word alignment: the words of each segment get their times.
//!
//! Two routes. A recognizer that times words while it decodes (Whisper:
//! the cross-attention of its alignment heads and dynamic time warping,
//! inside the seek loop, as openai-whisper does) reports it in its stages
//! when `decode.word_timestamps` is on. Any other aligner (a user's, or a
//! CTC aligner) implements [`Aligner`] and runs after recognition on the
//! whole recording.

pub mod ctc;
pub mod wav2vec2;

use std::path::Path;

use serde::Deserialize;

use super::audio::Recording;
use super::{Data, StageError, StageInfo, TranscriptStage};
use crate::transcript::{Progress, Transcript};

/// Gives the words of each segment their times (fills `Segment::words`).
pub trait Aligner: Send + Sync {
    fn name(&self) -> &str;
    /// `samples`: the whole recording, 16 kHz mono.
    fn align(&self, samples: &[f32], transcript: &mut Transcript) -> Result<(), StageError>;
}

/// An [`Aligner`] as a stage of the plan.
pub struct AlignStage(pub Box<dyn Aligner>);

impl AlignStage {
    /// The stage as the plan shows it, done by `implementation`.
    pub fn info_for(implementation: String) -> StageInfo {
        StageInfo::new("align", implementation, Data::Transcript, Data::Transcript)
    }
}

impl TranscriptStage for AlignStage {
    fn info(&self) -> StageInfo {
        AlignStage::info_for(self.0.name().to_string())
    }

    /// Aligners see the recording's samples all at once.
    fn run(
        &self,
        recording: Recording<'_>,
        transcript: &mut Transcript,
        _: &dyn Fn(Progress),
    ) -> Result<(), StageError> {
        let samples = recording
            .samples()
            .map_err(|e| StageError::audio(self.0.name(), e))?;
        self.0.align(&samples, transcript)
    }
}

/// The `[align]` table of a run configuration: words timed by a wav2vec2
/// CTC model after recognition (without it, Whisper times words itself
/// when `decode.word_timestamps` is on).
///
/// ```toml
/// [align]
/// model = "wav2vec2-base-960h"  # MLX folder, Hugging Face Wav2Vec2ForCTC folder or torchaudio state dict
/// labels = ["-", "|", "E"]      # a state dict's outputs; torchaudio's English ASR labels when unset
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignOptions {
    /// Relative paths are resolved against the config file's folder.
    pub model: String,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

impl AlignOptions {
    /// Values that cannot work, each as `align.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !Path::new(&self.model).exists() {
            out.push(format!(
                "align.model: {}: no such file or folder",
                self.model
            ));
        }
        if self.labels.as_ref().is_some_and(Vec::is_empty) {
            out.push("align.labels: empty list".into());
        }
        out
    }

    /// The aligner as the plan shows it.
    pub fn describe(&self) -> String {
        wav2vec2::describe(&self.model)
    }

    /// Loads the aligner (converting the model into the cache on first use).
    pub fn load(&self) -> Result<wav2vec2::Wav2Vec2Aligner, StageError> {
        wav2vec2::Wav2Vec2Aligner::from_spec(&self.model, self.labels.as_deref())
    }
}
