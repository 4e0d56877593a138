//! What a run produces: the transcript of one recording, its segments and
//! timed words, speaker turns, and where the time went. Every stage reads
//! and writes these types; the output stage renders them.

use serde::Serialize;

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
    /// Timed words, when words are aligned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<SegmentWord>,
    /// The speaker, when the recording is diarized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// The result for one input file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Spoken language code.
    pub language: Option<String>,
    /// Its probability when it was detected rather than given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_probability: Option<f32>,
    /// Who spoke when, in time order, when the recording is diarized.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<SpeakerTurn>,
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
    /// Parts of `decoder`: each pass's prompt (context through the blocks,
    /// cross-attention keys/values), the blocks per sampled token, the
    /// vocabulary projection (with its copy to the host), and token rules +
    /// picking on the host.
    pub decoder_prompt: f64,
    pub decoder_blocks: f64,
    pub decoder_logits: f64,
    pub decoder_picking: f64,
    /// Decoding passes over a window (temperature fallbacks included).
    pub decoder_passes: usize,
    /// Windows whose greedy pass was decoded side by side with other
    /// recordings' windows (their decoder times are shares of the batch's,
    /// by the tokens each decoded).
    pub batched_windows: usize,
    /// Word alignment (cross-attention pass + DTW), when words are timed.
    pub word_timestamps: f64,
    /// 30 s windows encoded and tokens decoded (end-of-text included).
    pub windows: usize,
    pub tokens: usize,
    /// Each stage after recognition (aligners, diarizers) by its
    /// implementation's name, with its seconds.
    pub after_recognition: Vec<(String, f64)>,
}

impl std::ops::AddAssign<&Timings> for Timings {
    fn add_assign(&mut self, other: &Timings) {
        self.audio += other.audio;
        self.transcribe += other.transcribe;
        self.mel += other.mel;
        self.encoder += other.encoder;
        self.decoder += other.decoder;
        self.decoder_prompt += other.decoder_prompt;
        self.decoder_blocks += other.decoder_blocks;
        self.decoder_logits += other.decoder_logits;
        self.decoder_picking += other.decoder_picking;
        self.decoder_passes += other.decoder_passes;
        self.batched_windows += other.batched_windows;
        self.word_timestamps += other.word_timestamps;
        self.windows += other.windows;
        self.tokens += other.tokens;
        self.after_recognition
            .extend(other.after_recognition.iter().cloned());
    }
}

/// A word with its time span (seconds) and the model's confidence in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
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

/// A stretch of the recording attributed to one speaker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpeakerTurn {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
}

/// How far a transcription has got, for progress bars.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Progress {
    /// Seconds of audio transcribed.
    pub done: f64,
    /// Length of the recording, once known.
    pub total: Option<f64>,
}
