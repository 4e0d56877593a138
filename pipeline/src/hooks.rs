//! Extension points after decoding: word alignment and speaker diarization.
//! Implement a trait, hand it to the [`crate::Pipeline`] builder, and the
//! pipeline calls it with the recording's samples and the transcript;
//! words and speakers then appear in the `Transcript` and in the JSON,
//! SRT and VTT outputs.

use serde::Serialize;

use crate::output::Transcript;

/// A word with its time span (seconds) and the model's confidence in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// A stretch of the recording attributed to one speaker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpeakerTurn {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
}

/// What a hook reports when it cannot do its job.
#[derive(Debug, thiserror::Error)]
#[error("{hook}: {message}")]
pub struct HookError {
    pub hook: String,
    pub message: String,
}

/// Gives the words of each segment their times (fills `Segment::words`).
pub trait AlignmentHook: Send + Sync {
    fn name(&self) -> &str;
    /// `samples`: the whole recording, 16 kHz mono.
    fn align(&self, samples: &[f32], transcript: &mut Transcript) -> Result<(), HookError>;
}

/// Says who speaks when; the pipeline labels each segment (and word) with
/// the speaker it overlaps most.
pub trait DiarizationHook: Send + Sync {
    fn name(&self) -> &str;
    fn diarize(&self, samples: &[f32]) -> Result<Vec<SpeakerTurn>, HookError>;
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

/// A word as it appears in a segment: the aligned word plus its speaker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentWord {
    #[serde(flatten)]
    pub word: Word,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

impl From<Word> for SegmentWord {
    fn from(word: Word) -> Self {
        SegmentWord {
            word,
            speaker: None,
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
