//! Speaker diarization: who speaks when. A [`Diarizer`] returns speaker
//! turns for the whole recording; the stage labels each segment and word
//! with the speaker whose turns overlap it most.

pub mod chunked;
pub mod chunks;
pub mod clustering;

use super::{Data, StageError, StageInfo, TranscriptStage};
use crate::transcript::{SpeakerTurn, Transcript};

/// Says who speaks when.
pub trait Diarizer: Send + Sync {
    fn name(&self) -> &str;
    /// `samples`: the whole recording, 16 kHz mono.
    fn diarize(&self, samples: &[f32]) -> Result<Vec<SpeakerTurn>, StageError>;
}

/// A [`Diarizer`] as a stage of the plan.
pub struct DiarizeStage(pub Box<dyn Diarizer>);

impl TranscriptStage for DiarizeStage {
    fn info(&self) -> StageInfo {
        StageInfo::new(
            "diarize",
            self.0.name().to_string(),
            Data::Transcript,
            Data::Transcript,
        )
    }

    fn run(&self, samples: &[f32], transcript: &mut Transcript) -> Result<(), StageError> {
        let turns = self.0.diarize(samples)?;
        assign_speakers(transcript, &turns);
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
