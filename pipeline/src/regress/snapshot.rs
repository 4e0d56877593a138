//! The snapshot body of a transcript: stable JSON that changes only when
//! the words, times or tokens do.

use serde::Serialize;

use crate::transcript::Transcript;

/// Placeholders for the values whose last digits move with BLAS threading.
const LOGPROB: &str = "[logprob]";
const RATIO: &str = "[ratio]";
const PROB: &str = "[prob]";

#[derive(Serialize)]
struct StableTranscript<'a> {
    text: &'a str,
    segments: Vec<StableSegment<'a>>,
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language_probability: Option<&'static str>,
}

#[derive(Serialize)]
struct StableSegment<'a> {
    id: usize,
    seek: usize,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: &'a [u32],
    temperature: f32,
    avg_logprob: &'static str,
    compression_ratio: &'static str,
    no_speech_prob: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    words: Vec<StableWord<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<&'a str>,
}

#[derive(Serialize)]
struct StableWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
    probability: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<&'a str>,
}

/// Seconds to the millisecond (`5.5600000000000005` → `5.56`).
fn ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The snapshot body of a transcript: openai-whisper's JSON fields with
/// text, times (to the millisecond), tokens and temperatures kept and the
/// probabilities and compression ratios redacted.
pub fn render_snapshot(t: &Transcript) -> String {
    let stable = StableTranscript {
        text: &t.text,
        segments: t
            .segments
            .iter()
            .map(|s| StableSegment {
                id: s.id,
                seek: s.seek,
                start: ms(s.start),
                end: ms(s.end),
                text: &s.text,
                tokens: &s.tokens,
                temperature: s.temperature,
                avg_logprob: LOGPROB,
                compression_ratio: RATIO,
                no_speech_prob: PROB,
                words: s
                    .words
                    .iter()
                    .map(|w| StableWord {
                        word: &w.word.word,
                        start: ms(w.word.start),
                        end: ms(w.word.end),
                        probability: PROB,
                        speaker: w.speaker.as_deref(),
                    })
                    .collect(),
                speaker: s.speaker.as_deref(),
            })
            .collect(),
        language: t.language.as_deref(),
        language_probability: t.language_probability.map(|_| PROB),
    };
    serde_json::to_string_pretty(&stable).expect("transcripts serialize")
}
