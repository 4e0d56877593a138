//! Transcript writers: txt, json, srt, vtt, tsv, and rttm for the speaker
//! turns of a diarized recording. Files are written under a temporary name
//! and renamed, so a failed run leaves no half-written file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use asr_converters::atomic::{remove_stale_staging, write_atomically};
use serde::Deserialize;

use crate::transcript::{SegmentWord, Transcript};

mod existing;
pub use existing::{existing_output, Existing};

/// Output formats of a transcript.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Txt,
    Json,
    Srt,
    Vtt,
    Tsv,
    /// NIST's Rich Transcription Time Marked lines, one per speaker turn
    /// (the format diarization scorers read).
    Rttm,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Tsv => "tsv",
            Format::Rttm => "rttm",
        }
    }
}

fn clock(seconds: f64, decimal: char) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{decimal}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// How SRT and VTT cues are cut from timed words (openai-whisper's
/// writer options); without words every segment is one cue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubtitleOptions {
    /// One cue per word with the word underlined (`<u>…</u>`), karaoke style.
    pub highlight_words: bool,
    /// Cues of at most this many words.
    pub max_words_per_line: Option<usize>,
}

impl SubtitleOptions {
    pub(crate) fn uses_words(&self) -> bool {
        self.highlight_words || self.max_words_per_line.is_some()
    }
}

/// A subtitle: a time span and its text.
struct Cue {
    start: f64,
    end: f64,
    text: String,
}

/// The words of a line, the `highlight`-th one underlined.
fn line_text(words: &[SegmentWord], highlight: Option<usize>) -> String {
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        let word = w.word.word.as_str();
        if highlight == Some(i) {
            let bare = word.trim_start();
            text.push_str(&word[..word.len() - bare.len()]);
            let _ = write!(text, "<u>{bare}</u>");
        } else {
            text.push_str(word);
        }
    }
    text.trim().to_string()
}

/// The cues of a transcript: a segment each, or lines of its words (one
/// cue per spoken word when highlighting, the plain line in the pauses).
fn cues(t: &Transcript, options: &SubtitleOptions) -> Vec<Cue> {
    let mut out = Vec::new();
    for s in &t.segments {
        let speaker = s
            .speaker
            .as_ref()
            .map(|name| format!("[{name}] "))
            .unwrap_or_default();
        let cue = |start: f64, end: f64, text: String| Cue {
            start,
            end,
            text: format!("{speaker}{}", text.replace("-->", "->")),
        };
        if s.words.is_empty() || !options.uses_words() {
            out.push(cue(s.start, s.end, s.text.trim().to_string()));
            continue;
        }
        let per_line = options.max_words_per_line.unwrap_or(usize::MAX).max(1);
        for line in s.words.chunks(per_line) {
            let (first, last) = (&line[0].word, &line[line.len() - 1].word);
            if !options.highlight_words {
                out.push(cue(first.start, last.end, line_text(line, None)));
                continue;
            }
            let mut shown_until = first.start;
            for (i, w) in line.iter().enumerate() {
                if ms(w.word.start) > ms(shown_until) {
                    out.push(cue(shown_until, w.word.start, line_text(line, None)));
                }
                out.push(cue(w.word.start, w.word.end, line_text(line, Some(i))));
                shown_until = w.word.end;
            }
        }
    }
    out
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Subtitle cues: `[index]`, `start --> end`, text, blank line.
fn write_cues(out: &mut String, cues: &[Cue], decimal: char, numbered: bool) {
    for (i, c) in cues.iter().enumerate() {
        if numbered {
            let _ = writeln!(out, "{}", i + 1);
        }
        let _ = write!(
            out,
            "{} --> {}\n{}\n\n",
            clock(c.start, decimal),
            clock(c.end, decimal),
            c.text
        );
    }
}

/// The transcript rendered in `format`, subtitles a cue per segment, RTTM
/// lines naming the recording `recording`.
pub fn render(t: &Transcript, format: Format) -> String {
    render_with(t, format, &SubtitleOptions::default(), "recording")
}

/// The transcript rendered in `format`, subtitles cut as `subtitles` says;
/// `recording` is the file id of RTTM lines (no whitespace: it is replaced).
pub fn render_with(
    t: &Transcript,
    format: Format,
    subtitles: &SubtitleOptions,
    recording: &str,
) -> String {
    let mut out = String::new();
    match format {
        Format::Txt => out = format!("{}\n", t.text.trim()),
        Format::Json => {
            out = serde_json::to_string_pretty(t).expect("transcripts serialize") + "\n"
        }
        Format::Srt => write_cues(&mut out, &cues(t, subtitles), ',', true),
        Format::Vtt => {
            out.push_str("WEBVTT\n\n");
            write_cues(&mut out, &cues(t, subtitles), '.', false);
        }
        Format::Tsv => {
            out.push_str("start\tend\ttext\n");
            for s in &t.segments {
                let text = s.text.trim().replace('\t', " ");
                let _ = writeln!(
                    out,
                    "{}\t{}\t{text}",
                    (s.start * 1000.0).round(),
                    (s.end * 1000.0).round()
                );
            }
        }
        Format::Rttm => {
            let id: String = recording
                .chars()
                .map(|c| if c.is_whitespace() { '_' } else { c })
                .collect();
            for turn in &t.speakers {
                let _ = writeln!(
                    out,
                    "SPEAKER {id} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>",
                    turn.start,
                    turn.end - turn.start,
                    turn.speaker
                );
            }
        }
    }
    out
}

/// Writes `<dir>/<stem>.<ext>` atomically; returns the path written.
pub fn write(
    t: &Transcript,
    format: Format,
    subtitles: &SubtitleOptions,
    dir: &Path,
    stem: &str,
) -> std::io::Result<PathBuf> {
    let path = dir.join(format!("{stem}.{}", format.extension()));
    write_atomically(&path, render_with(t, format, subtitles, stem))?;
    // An output is staged for milliseconds: one staged long before this
    // write belongs to a run that was killed while writing it.
    let long_ago = SystemTime::now() - ABANDONED_AFTER;
    if let Err(e) = remove_stale_staging(&path, long_ago) {
        tracing::warn!(path = %path.display(), "leftovers of a killed run stay: {e}");
    }
    Ok(path)
}

/// How old a staged output must be to count as abandoned.
const ABANDONED_AFTER: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{Segment, SpeakerTurn, Timings, Word};

    fn transcript() -> Transcript {
        let word = |w: &str, start: f64, end: f64| {
            SegmentWord::from(Word {
                word: w.into(),
                start,
                end,
                probability: 0.9,
            })
        };
        let segment = Segment {
            id: 0,
            seek: 0,
            start: 0.0,
            end: 1.2,
            text: " And so my".into(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: -0.1,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words: vec![
                word(" And", 0.0, 0.5),
                word(" so", 0.5, 0.8),
                word(" my", 1.0, 1.2),
            ],
            speaker: None,
        };
        Transcript {
            text: segment.text.clone(),
            segments: vec![segment],
            language: Some("en".into()),
            language_probability: None,
            speakers: Vec::new(),
            timings: Timings::default(),
        }
    }

    #[test]
    fn highlighted_words_get_a_cue_each_and_pauses_the_plain_line() {
        let options = SubtitleOptions {
            highlight_words: true,
            max_words_per_line: None,
        };
        let vtt = render_with(&transcript(), Format::Vtt, &options, "jfk");
        let expected = "WEBVTT\n\n\
            00:00:00.000 --> 00:00:00.500\n<u>And</u> so my\n\n\
            00:00:00.500 --> 00:00:00.800\nAnd <u>so</u> my\n\n\
            00:00:00.800 --> 00:00:01.000\nAnd so my\n\n\
            00:00:01.000 --> 00:00:01.200\nAnd so <u>my</u>\n\n";
        assert_eq!(vtt, expected);
    }

    #[test]
    fn lines_hold_at_most_max_words_per_line() {
        let options = SubtitleOptions {
            highlight_words: false,
            max_words_per_line: Some(2),
        };
        let srt = render_with(&transcript(), Format::Srt, &options, "jfk");
        let expected = "1\n00:00:00,000 --> 00:00:00,800\nAnd so\n\n\
            2\n00:00:01,000 --> 00:00:01,200\nmy\n\n";
        assert_eq!(srt, expected);
        // Without options a segment is one cue.
        let plain = render(&transcript(), Format::Srt);
        assert_eq!(plain, "1\n00:00:00,000 --> 00:00:01,200\nAnd so my\n\n");
    }

    #[test]
    fn rttm_has_a_line_per_speaker_turn() {
        let mut t = transcript();
        t.speakers = vec![
            SpeakerTurn {
                start: 0.25,
                end: 1.5,
                speaker: "SPEAKER_00".into(),
            },
            SpeakerTurn {
                start: 1.5,
                end: 3.125,
                speaker: "SPEAKER_01".into(),
            },
        ];
        let rttm = render_with(&t, Format::Rttm, &SubtitleOptions::default(), "my talk");
        assert_eq!(
            rttm,
            "SPEAKER my_talk 1 0.250 1.250 <NA> <NA> SPEAKER_00 <NA> <NA>\n\
             SPEAKER my_talk 1 1.500 1.625 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
        );
        assert_eq!(render(&transcript(), Format::Rttm), "");
    }

    #[test]
    fn writing_an_output_removes_what_a_killed_run_left_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let staged = |name: &str, age: Duration| {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            file.set_modified(SystemTime::now() - age).unwrap();
            path
        };
        let abandoned = staged(".jfk.txt.partial-dead01", Duration::from_secs(3600));
        let live = staged(".jfk.txt.partial-live01", Duration::ZERO);
        let other = staged(".other.txt.partial-dead02", Duration::from_secs(3600));
        let path = write(
            &transcript(),
            Format::Txt,
            &SubtitleOptions::default(),
            dir.path(),
            "jfk",
        )
        .unwrap();
        assert!(path.is_file());
        assert!(!abandoned.exists());
        assert!(live.exists() && other.exists());
    }
}
