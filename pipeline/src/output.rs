//! Transcript writers: txt, json, srt, vtt, tsv. Files are written under a
//! temporary name and renamed, so a failed run leaves no half-written file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Format;
use crate::hooks::SegmentWord;

/// A stretch of transcribed audio (openai-whisper's segment fields).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    pub id: usize,
    /// The window (in 10 ms mel frames) the segment was decoded in.
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Its tokens, timestamps included.
    pub tokens: Vec<u32>,
    /// The sampling temperature that produced it (above 0 after fallback).
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// Timed words, when an alignment hook ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<SegmentWord>,
    /// The speaker, when a diarization hook ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// The result for one input file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Spoken language code.
    pub language: Option<String>,
    /// Its probability when it was detected rather than given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_probability: Option<f32>,
    /// Where the time went (not part of the written outputs).
    #[serde(skip)]
    pub timings: Timings,
}

/// Wall-clock seconds per stage of one transcription.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    /// Seconds of audio transcribed.
    pub audio: f64,
    /// Decoding the file and everything up to the transcript.
    pub transcribe: f64,
    /// Parts of `transcribe`: log-mel frames (audio decoding included),
    /// encoder, and token decoding (all temperatures tried).
    pub mel: f64,
    pub encoder: f64,
    pub decoder: f64,
    /// Parts of `decoder`: the blocks, the vocabulary projection (with its
    /// copy to the host), and token rules + picking on the host.
    pub decoder_blocks: f64,
    pub decoder_logits: f64,
    pub decoder_picking: f64,
    /// Word alignment (cross-attention pass + DTW), when words are timed.
    pub word_timestamps: f64,
    /// 30 s windows encoded and tokens decoded (end-of-text included).
    pub windows: usize,
    pub tokens: usize,
    pub alignment: f64,
    pub diarization: f64,
}

impl std::ops::AddAssign<&Timings> for Timings {
    fn add_assign(&mut self, other: &Timings) {
        self.audio += other.audio;
        self.transcribe += other.transcribe;
        self.mel += other.mel;
        self.encoder += other.encoder;
        self.decoder += other.decoder;
        self.decoder_blocks += other.decoder_blocks;
        self.decoder_logits += other.decoder_logits;
        self.decoder_picking += other.decoder_picking;
        self.word_timestamps += other.word_timestamps;
        self.windows += other.windows;
        self.tokens += other.tokens;
        self.alignment += other.alignment;
        self.diarization += other.diarization;
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

/// Subtitle cues: `[index]`, `start --> end`, text, blank line.
fn write_cues(out: &mut String, t: &Transcript, decimal: char, numbered: bool) {
    for (i, s) in t.segments.iter().enumerate() {
        if numbered {
            let _ = writeln!(out, "{}", i + 1);
        }
        let speaker = s
            .speaker
            .as_ref()
            .map(|name| format!("[{name}] "))
            .unwrap_or_default();
        let _ = write!(
            out,
            "{} --> {}\n{speaker}{}\n\n",
            clock(s.start, decimal),
            clock(s.end, decimal),
            s.text.trim()
        );
    }
}

/// The transcript rendered in `format`.
pub fn render(t: &Transcript, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Txt => out = format!("{}\n", t.text.trim()),
        Format::Json => {
            out = serde_json::to_string_pretty(t).expect("transcripts serialize") + "\n"
        }
        Format::Srt => write_cues(&mut out, t, ',', true),
        Format::Vtt => {
            out.push_str("WEBVTT\n\n");
            write_cues(&mut out, t, '.', false);
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
    }
    out
}

/// Writes `<dir>/<stem>.<ext>` atomically; returns the path written.
pub fn write(t: &Transcript, format: Format, dir: &Path, stem: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{stem}.{}", format.extension()));
    let tmp = dir.join(format!(
        ".{stem}.{}.partial-{}",
        format.extension(),
        std::process::id()
    ));
    std::fs::write(&tmp, render(t, format))?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(path)
}
