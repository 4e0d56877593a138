//! A transcript in the shape OpenAI's endpoints answer: `json` (the text),
//! `verbose_json` (language, duration, segments, words when asked), or the
//! plain-text formats, which the pipeline's own writers render.

use asr_pipeline::stages::output::{render_with, SubtitleOptions};
use asr_pipeline::{Format, Task, Transcript};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::form::ResponseFormat;

/// What a request's transcript is answered with, besides the transcript.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    pub task: Task,
    /// Seconds of audio the request carried.
    pub duration: f64,
    /// Words were asked for (`timestamp_granularities[]=word`).
    pub words: bool,
}

impl Answer {
    /// The answer in `format`, subtitles cut as `subtitles` says.
    pub fn respond(
        &self,
        t: &Transcript,
        format: ResponseFormat,
        subtitles: &SubtitleOptions,
    ) -> Response {
        let plain = |format: Format| {
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                render_with(t, format, subtitles, "recording"),
            )
                .into_response()
        };
        match format {
            ResponseFormat::Json => {
                Json(json!({"text": t.text.trim(), "usage": self.usage()})).into_response()
            }
            ResponseFormat::VerboseJson => Json(self.verbose(t)).into_response(),
            ResponseFormat::Text => plain(Format::Txt),
            ResponseFormat::Srt => plain(Format::Srt),
            ResponseFormat::Vtt => plain(Format::Vtt),
        }
    }

    /// OpenAI's `verbose_json`, with each segment's and word's speaker and
    /// the speaker turns when the pipeline diarizes.
    pub fn verbose(&self, t: &Transcript) -> Value {
        let segments: Vec<Value> = t
            .segments
            .iter()
            .map(|s| {
                let mut segment = json!({
                    "id": s.id,
                    "seek": s.seek,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "tokens": s.tokens,
                    "temperature": s.temperature,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                });
                if let Some(speaker) = &s.speaker {
                    segment["speaker"] = json!(speaker);
                }
                segment
            })
            .collect();
        let mut body = json!({
            "task": match self.task {
                Task::Transcribe => "transcribe",
                Task::Translate => "translate",
            },
            "language": t.language.as_deref().map(language_name).unwrap_or_default(),
            "duration": self.duration,
            "text": t.text.trim(),
            "segments": segments,
            "usage": self.usage(),
        });
        if self.words {
            let words: Vec<Value> = t
                .segments
                .iter()
                .flat_map(|s| &s.words)
                .map(|w| {
                    let mut word = json!({
                        "word": w.word.word.trim(),
                        "start": w.word.start,
                        "end": w.word.end,
                    });
                    if let Some(speaker) = &w.speaker {
                        word["speaker"] = json!(speaker);
                    }
                    word
                })
                .collect();
            body["words"] = json!(words);
        }
        if !t.speakers.is_empty() {
            body["speakers"] = json!(t
                .speakers
                .iter()
                .map(|turn| json!({"speaker": turn.speaker, "start": turn.start, "end": turn.end}))
                .collect::<Vec<_>>());
        }
        body
    }

    /// Every output format `pipeline run` writes, for the web page's
    /// downloads.
    pub fn outputs(&self, t: &Transcript, subtitles: &SubtitleOptions) -> Value {
        let formats = [
            Format::Txt,
            Format::Json,
            Format::Srt,
            Format::Vtt,
            Format::Tsv,
        ];
        let outputs: serde_json::Map<String, Value> = formats
            .into_iter()
            .map(|f| {
                let text = render_with(t, f, subtitles, "recording");
                (f.extension().to_string(), Value::String(text))
            })
            .collect();
        Value::Object(outputs)
    }

    /// OpenAI bills transcriptions by the second of audio, rounded up.
    fn usage(&self) -> Value {
        json!({"type": "duration", "seconds": self.duration.ceil() as u64})
    }
}

/// OpenAI's lower-case English name of a language (`en` → `english`):
/// ISO 639's reference name, unqualified, but where Whisper's names differ;
/// the code itself when it is not an ISO 639 one.
fn language_name(code: &str) -> String {
    if let Some(&(_, name)) = WHISPER_NAMES.iter().find(|(c, _)| *c == code) {
        return name.to_string();
    }
    let language =
        isolang::Language::from_639_1(code).or_else(|| isolang::Language::from_639_3(code));
    match language {
        // ISO's reference names qualify some ("Spanish; Castilian").
        Some(l) => {
            let name = l.to_name();
            name.split(['(', ';', ','])
                .next()
                .unwrap_or(name)
                .trim()
                .to_lowercase()
        }
        None => code.to_string(),
    }
}

/// Whisper's language codes whose names are not ISO 639's reference names
/// (or whose codes are not ISO 639's: `iw`, `jw`).
const WHISPER_NAMES: &[(&str, &str)] = &[
    ("el", "greek"),
    ("ht", "haitian creole"),
    ("iw", "hebrew"),
    ("jw", "javanese"),
    ("km", "khmer"),
    ("my", "myanmar"),
    ("nn", "nynorsk"),
    ("pa", "punjabi"),
    ("ps", "pashto"),
    ("yue", "cantonese"),
];

#[cfg(test)]
mod tests {
    use super::language_name;

    #[test]
    fn languages_are_named_as_openai_names_them() {
        assert_eq!(language_name("en"), "english");
        assert_eq!(language_name("de"), "german");
        assert_eq!(language_name("es"), "spanish");
        assert_eq!(language_name("haw"), "hawaiian");
        assert_eq!(language_name("yue"), "cantonese");
        assert_eq!(language_name("xx"), "xx");
    }
}
