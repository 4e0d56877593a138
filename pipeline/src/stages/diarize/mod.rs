//! Speaker diarization: who speaks when. A [`Diarizer`] returns speaker
//! turns for the whole recording; the stage keeps them in the transcript
//! and labels each segment and word with the speaker whose turns overlap
//! it most.

pub mod chunked;
pub mod chunks;
pub mod clustering;
mod models;
mod options;

pub use models::load_diarizer;
pub use options::DiarizationOptions;

use super::audio::Recording;
use super::{Data, StageError, StageInfo, TranscriptStage};
use crate::transcript::{Progress, SpeakerTurn, Transcript};

/// Says who speaks when.
pub trait Diarizer: Send + Sync {
    fn name(&self) -> &str;
    /// The speaker turns of the whole recording, in time order; `progress`
    /// hears how many seconds of it have been read.
    fn diarize(
        &self,
        recording: Recording<'_>,
        progress: &dyn Fn(Progress),
    ) -> Result<Vec<SpeakerTurn>, StageError>;
}

/// A [`Diarizer`] as a stage of the plan.
pub struct DiarizeStage(pub Box<dyn Diarizer>);

impl DiarizeStage {
    /// The stage as the plan shows it, done by `implementation`.
    pub fn info_for(implementation: String) -> StageInfo {
        StageInfo::new(
            "diarize",
            implementation,
            Data::Transcript,
            Data::Transcript,
        )
    }
}

impl TranscriptStage for DiarizeStage {
    fn info(&self) -> StageInfo {
        DiarizeStage::info_for(self.0.name().to_string())
    }

    fn run(
        &self,
        recording: Recording<'_>,
        transcript: &mut Transcript,
        progress: &dyn Fn(Progress),
    ) -> Result<(), StageError> {
        let turns = self.0.diarize(recording, progress)?;
        assign_speakers(transcript, &turns);
        transcript.speakers = turns;
        Ok(())
    }
}

/// The speaker of the turn that overlaps `[start, end)` most, if any does.
fn dominant_speaker(turns: &[SpeakerTurn], start: f64, end: f64) -> Option<&str> {
    turns
        .iter()
        .map(|t| (t, end.min(t.end) - start.max(t.start)))
        .filter(|(_, overlap)| *overlap > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(t, _)| t.speaker.as_str())
}

/// Labels segments and words with the speaker they overlap most.
pub fn assign_speakers(transcript: &mut Transcript, turns: &[SpeakerTurn]) {
    for segment in &mut transcript.segments {
        segment.speaker = dominant_speaker(turns, segment.start, segment.end).map(str::to_owned);
        for word in &mut segment.words {
            word.speaker =
                dominant_speaker(turns, word.word.start, word.word.end).map(str::to_owned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start: f64, end: f64, speaker: &str) -> SpeakerTurn {
        SpeakerTurn {
            start,
            end,
            speaker: speaker.into(),
        }
    }

    #[test]
    fn the_speaker_with_the_longest_overlap_wins() {
        let turns = [turn(0.0, 4.0, "A"), turn(4.0, 10.0, "B")];
        assert_eq!(dominant_speaker(&turns, 3.0, 6.0), Some("B"));
        assert_eq!(dominant_speaker(&turns, 0.5, 4.5), Some("A"));
        assert_eq!(dominant_speaker(&turns, 10.0, 12.0), None);
    }
}
