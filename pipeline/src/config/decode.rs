//! How recordings are decoded: openai-whisper's `transcribe()` options, with
//! its names and defaults. Thresholds are plain numbers; `inf`/`-inf` (valid
//! TOML) switch one off.

use serde::Deserialize;

/// Windows decoded side by side at most: the decoder's product kernels read
/// a matrix once for up to 8 rows (more take the many-row route).
pub const MAX_BATCH_SIZE: usize = 8;

/// Beams (`beam_size`) or draws (`best_of`) per window at most: each holds
/// a decoder state of its own, so memory and time grow with their number
/// (1000 beams took over a gigabyte); 32 is well past where accuracy stops
/// improving.
pub const MAX_BEAMS: usize = 32;

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
    /// Beam search with this many beams at temperature 0; unset: greedy
    /// (openai-whisper's `transcribe()` default; its CLI and faster-whisper
    /// use 5).
    pub beam_size: Option<usize>,
    /// Beam search stops once `round(beam_size * patience)` beams have
    /// ended (unset: 1.0).
    pub patience: Option<f32>,
    /// Draws per window at temperatures above 0; the best-ranked is kept.
    pub best_of: Option<usize>,
    /// Hypotheses are ranked by `logprob / ((5 + n) / 6)^length_penalty`;
    /// unset: by `logprob / n`.
    pub length_penalty: Option<f32>,
    /// Token ids never sampled; `-1` stands for the non-speech symbols
    /// (openai-whisper's `"-1"`). A list or a comma-separated string.
    #[serde(deserialize_with = "token_ids")]
    pub suppress_tokens: Vec<i64>,
    /// No blank (a lone space) or end-of-text as a window's first token.
    pub suppress_blank: bool,
    /// Text forced as the start of the first window's transcript.
    pub prefix: Option<String>,
    /// Words or phrases given to every window as earlier context
    /// (faster-whisper's option; ignored with `prefix`).
    pub hotwords: Option<String>,
    /// Keep `initial_prompt` in every window's prompt, not only the first.
    pub carry_initial_prompt: bool,
    /// With word timestamps: skip silences longer than this many seconds
    /// around text that looks hallucinated (improbable, too short or too
    /// long words).
    pub hallucination_silence_threshold: Option<f64>,
    /// Recordings whose first windows are decoded side by side when several
    /// are transcribed (greedy decoding; at most 8, 1 for one at a time).
    pub batch_size: usize,
    /// Qwen3-ASR: the most tokens a reply may add (448 when unset). A live
    /// stream caps each hypothesis so.
    pub max_new_tokens: Option<usize>,
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
            beam_size: None,
            patience: None,
            best_of: None,
            length_penalty: None,
            suppress_tokens: vec![-1],
            suppress_blank: true,
            prefix: None,
            hotwords: None,
            carry_initial_prompt: false,
            hallucination_silence_threshold: None,
            batch_size: 8,
            max_new_tokens: None,
        }
    }
}

impl DecodeOptions {
    /// Whether a window's first attempt is plain greedy decoding (temperature
    /// 0 without beams): the decoding that windows share in batches.
    pub fn greedy_first(&self) -> bool {
        self.temperature.first() == Some(&0.0) && self.beam_size.unwrap_or(1) == 1
    }

    /// Values that cannot work, each as `decode.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.temperature.is_empty() {
            out.push("decode.temperature: empty list".into());
        }
        if self.max_new_tokens == Some(0) {
            out.push("decode.max_new_tokens: at least 1".into());
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
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            out.push(format!(
                "decode.batch_size: {} is not between 1 and {}",
                self.batch_size, MAX_BATCH_SIZE
            ));
        }
        for (key, count) in [("beam_size", self.beam_size), ("best_of", self.best_of)] {
            match count {
                Some(0) => out.push(format!("decode.{key}: must be at least 1")),
                Some(n) if n > MAX_BEAMS => out.push(format!(
                    "decode.{key}: {n} is more than the {MAX_BEAMS} allowed"
                )),
                _ => {}
            }
        }
        for (key, threshold) in [
            (
                "compression_ratio_threshold",
                self.compression_ratio_threshold,
            ),
            ("logprob_threshold", self.logprob_threshold),
            ("no_speech_threshold", self.no_speech_threshold),
        ] {
            if threshold.is_nan() {
                out.push(format!(
                    "decode.{key}: nan is not a number (inf or -inf switch it off)"
                ));
            }
        }
        if let Some(p) = self.patience {
            if !(p.is_finite() && p > 0.0) {
                out.push(format!("decode.patience: {p} is not a number > 0"));
            } else if self.beam_size.is_none() {
                out.push("decode.patience: needs decode.beam_size".into());
            }
        }
        if let Some(a) = self.length_penalty.filter(|a| !(0.0..=1.0).contains(a)) {
            out.push(format!("decode.length_penalty: {a} is not between 0 and 1"));
        }
        if let Some(t) = self.suppress_tokens.iter().find(|&&t| t < -1) {
            out.push(format!(
                "decode.suppress_tokens: {t} is not a token id (or -1)"
            ));
        }
        if let Some(s) = self.hallucination_silence_threshold {
            if !(s.is_finite() && s > 0.0) {
                out.push(format!(
                    "decode.hallucination_silence_threshold: {s} is not a number of seconds > 0"
                ));
            } else if !self.word_timestamps {
                out.push(
                    "decode.hallucination_silence_threshold: needs decode.word_timestamps = true"
                        .into(),
                );
            }
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

fn token_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<i64>),
        Text(String),
    }
    match ListOrText::deserialize(d)? {
        ListOrText::List(ids) => Ok(ids),
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<i64>()
                    .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a token id")))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DecodeOptions {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn suppress_tokens_read_as_a_list_or_openai_whispers_string() {
        assert_eq!(DecodeOptions::default().suppress_tokens, [-1]);
        assert_eq!(
            parse("suppress_tokens = [-1, 50256]").suppress_tokens,
            [-1, 50256]
        );
        assert_eq!(
            parse(r#"suppress_tokens = "-1,220""#).suppress_tokens,
            [-1, 220]
        );
        assert!(parse(r#"suppress_tokens = """#).suppress_tokens.is_empty());
        let bad = toml::from_str::<DecodeOptions>(r#"suppress_tokens = "-1,x""#).unwrap_err();
        assert!(bad.to_string().contains("\"x\" is not a token id"), "{bad}");
    }

    #[test]
    fn search_and_guard_options_are_checked_together() {
        let options = parse(
            "beam_size = 0\nbest_of = 0\npatience = 2.0\nlength_penalty = 1.5\n\
             suppress_tokens = [-2]\nhallucination_silence_threshold = 2.0",
        );
        let problems = options.problems().join("\n");
        for expected in [
            "decode.beam_size: must be at least 1",
            "decode.best_of: must be at least 1",
            "decode.length_penalty: 1.5 is not between 0 and 1",
            "decode.suppress_tokens: -2 is not a token id",
            "decode.hallucination_silence_threshold: needs decode.word_timestamps = true",
        ] {
            assert!(
                problems.contains(expected),
                "{expected:?} missing from:\n{problems}"
            );
        }
        let patience = parse("patience = 2.0").problems();
        assert_eq!(patience, ["decode.patience: needs decode.beam_size"]);
        for (size, ok) in [(0, false), (1, true), (8, true), (9, false)] {
            let problems = parse(&format!("batch_size = {size}")).problems();
            let expected = format!("decode.batch_size: {size} is not between 1 and 8");
            assert_eq!(problems.is_empty(), ok, "{problems:?}");
            assert!(ok || problems == [expected], "{problems:?}");
        }
        let fine = parse(
            "beam_size = 5\npatience = 2.0\nlength_penalty = 0.6\nbest_of = 5\n\
             word_timestamps = true\nhallucination_silence_threshold = 2.0\nprefix = \"So\"",
        );
        assert!(fine.problems().is_empty(), "{:?}", fine.problems());
    }

    #[test]
    fn beams_draws_and_thresholds_are_bounded() {
        let options = parse(
            "beam_size = 9223372036854775807
best_of = 33
             compression_ratio_threshold = nan
logprob_threshold = nan
             no_speech_threshold = nan",
        );
        assert_eq!(
            options.problems(),
            [
                "decode.beam_size: 9223372036854775807 is more than the 32 allowed",
                "decode.best_of: 33 is more than the 32 allowed",
                "decode.compression_ratio_threshold: nan is not a number (inf or -inf switch it off)",
                "decode.logprob_threshold: nan is not a number (inf or -inf switch it off)",
                "decode.no_speech_threshold: nan is not a number (inf or -inf switch it off)",
            ]
        );
        let at_the_limit = parse(
            "beam_size = 32
best_of = 32
logprob_threshold = -inf",
        );
        assert!(at_the_limit.problems().is_empty());
    }
}
