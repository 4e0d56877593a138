//! Word alignment: the words of each segment get their times.
//!
//! Two routes. A recognizer that times words while it decodes (Whisper:
//! the cross-attention of its alignment heads and dynamic time warping,
//! inside the seek loop, as openai-whisper does) reports it in its stages
//! when `decode.word_timestamps` is on. Any other aligner (a user's, or a
//! CTC aligner) implements [`Aligner`] and runs after recognition on the
//! whole recording.

pub mod ctc;

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

impl TranscriptStage for AlignStage {
    fn info(&self) -> StageInfo {
        StageInfo::new(
            "align",
            self.0.name().to_string(),
            Data::Transcript,
            Data::Transcript,
        )
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
