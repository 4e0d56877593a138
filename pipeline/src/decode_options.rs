//! How recordings are decoded: openai-whisper's `transcribe()` options, with
//! its names and defaults. Thresholds are plain numbers; `inf`/`-inf` (valid
//! TOML) switch one off.

use serde::Deserialize;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Transcribe,
    /// Speech in any language to English text (multilingual models).
    Translate,
}

/// The `[decode]` table of a run configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeOptions {
    /// Spoken language code (`en`, `de`, …); detected on the first 30 s
    /// when unset (multilingual models; English-only ones are always `en`).
    pub language: Option<String>,
    pub task: Task,
    /// Temperatures tried in turn while a window fails the thresholds below.
    #[serde(deserialize_with = "one_or_many")]
    pub temperature: Vec<f32>,
    /// Retry when the text's gzip compression ratio is above this (repetition).
    pub compression_ratio_threshold: f32,
    /// Retry when the average token log-probability is below this.
    pub logprob_threshold: f32,
    /// Treat a window as silent when `<|nospeech|>` is above this and the
    /// text is below `logprob_threshold`.
    pub no_speech_threshold: f32,
    /// Feed each window's text to the next as a prompt.
    pub condition_on_previous_text: bool,
    /// Text given as if it preceded the first window (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Decode text only: one segment per window, no timestamp tokens.
    pub without_timestamps: bool,
    /// The first timestamp of a window is at most this many seconds.
    pub max_initial_timestamp: f64,
    /// Time every word (cross-attention alignment + DTW, openai-whisper's
    /// method); windows then resume after the last timed word.
    pub word_timestamps: bool,
    /// Seed of the sampler used at temperatures above 0.
    pub seed: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            language: None,
            task: Task::Transcribe,
            temperature: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            condition_on_previous_text: true,
            initial_prompt: None,
            without_timestamps: false,
            max_initial_timestamp: 1.0,
            word_timestamps: false,
            seed: 0,
        }
    }
}

impl DecodeOptions {
    /// Values that cannot work, each as `decode.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.temperature.is_empty() {
            out.push("decode.temperature: empty list".into());
        }
        if let Some(t) = self
            .temperature
            .iter()
            .find(|t| !(t.is_finite() && **t >= 0.0))
        {
            out.push(format!(
                "decode.temperature: {t} is not a finite number ≥ 0"
            ));
        }
        if self.max_initial_timestamp.is_nan() || self.max_initial_timestamp < 0.0 {
            out.push("decode.max_initial_timestamp: must be ≥ 0 (inf for no limit)".into());
        }
        if let Some(l) = &self.language {
            if l.is_empty() || !l.chars().all(|c| c.is_ascii_lowercase()) {
                out.push(format!(
                    "decode.language: {l:?} is not a language code like \"en\" or \"de\""
                ));
            }
        }
        out
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(t) => vec![t],
        OneOrMany::Many(ts) => ts,
    })
}
