//! Voice activity detection: which stretches of a 16 kHz mono recording hold
//! speech, and the bookkeeping that lets a model transcribe only those.
//!
//! The detector is WebRTC's (libfvad, through the `webrtc-vad` crate): a
//! Gaussian-mixture classifier over six sub-band energies that says, for
//! every 10, 20 or 30 ms frame, speech or not. Its raw decisions flicker, so
//! they go through the stages of [`VadOptions`], all measured in samples and
//! independent of the detector:
//!
//! 1. **smoothing** — the last `window_ms` of decisions: speech starts when
//!    at least `onset` of them are voiced and stops when at most `offset`
//!    are (hysteresis; a region runs from its first to its last voiced frame);
//! 2. **merging** — regions less than `min_silence_ms` apart become one;
//! 3. **dropping** — regions shorter than `min_speech_ms` are discarded;
//! 4. **padding** — `speech_pad_ms` of context on each side, clamped to the
//!    recording; where two padded regions would overlap the gap between them
//!    is split in the middle, so regions never overlap;
//! 5. **splitting** — a region longer than `max_speech_s` is cut into pieces
//!    of at most that length, each cut in the middle of the longest unvoiced
//!    run (else after the quietest frame) of the second half of the piece.
//!
//! [`detect_speech`] does this on a slice; [`VadStage`] does the same on
//! blocks as they arrive (identical regions whatever the block sizes), and
//! [`SpeechBlocks`] wraps a block iterator such as
//! [`crate::stages::audio::AudioStream`] to yield only the speech, in bounded
//! memory. A [`SpeechTimeline`] maps times on the gathered speech back to
//! the recording; [`pack`] groups regions into ≤ 30 s batches (WhisperX).
//!
//! The smoothing and everything after it work on per-frame speech
//! probabilities from a [`FrameClassifier`], so a neural detector (Silero)
//! can be a second implementation of the same stage.
//!
//! ```
//! use asr_pipeline::stages::vad::{detect_speech, SpeechTimeline, VadOptions};
//!
//! let samples = vec![0.0f32; 16_000 * 5]; // five seconds of silence
//! let regions = detect_speech(&samples, &VadOptions::default()).unwrap();
//! assert!(regions.is_empty());
//! let timeline = SpeechTimeline::new(regions);
//! assert!(timeline.gather(&samples).is_empty());
//! ```
mod regions;
mod speech_blocks;
mod timeline;
mod webrtc;

use serde::{Deserialize, Serialize};

use crate::stages::audio::SAMPLE_RATE;

pub use regions::VadStage;
pub use speech_blocks::SpeechBlocks;
pub use timeline::{pack, SpeechTimeline};
pub use webrtc::{WebRtc, WebRtcClassifier};

const RATE: usize = SAMPLE_RATE as usize;

/// Samples per millisecond at [`SAMPLE_RATE`].
const PER_MS: usize = RATE / 1000;

/// The `[vad]` table of a run configuration.
///
/// Defaults: WebRTC mode 3 on 30 ms frames; speech starts when half of the
/// last 300 ms of frames are voiced and stops when at most 10 % are; regions
/// less than 1 s apart are merged, regions under 250 ms dropped, 300 ms of
/// padding kept on each side, and regions longer than 30 s (one Whisper
/// window) split.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadOptions {
    /// The detector, by its name in [`DETECTORS`]. Default `"webrtc"`.
    pub model: String,
    /// WebRTC aggressiveness, 0 (reports the most speech) to 3 (the least,
    /// the most confident; best against noise and music). Default 3.
    pub mode: u8,
    /// Frame length the detector decides on: 10, 20 or 30 ms. Default 30.
    pub frame_ms: u32,
    /// Smoothing window: how many milliseconds of recent frame decisions
    /// the onset and offset ratios count over (at least one frame; 0 means
    /// one frame, i.e. raw decisions). Default 300.
    pub window_ms: u32,
    /// Speech starts when the share of voiced frames in the window reaches
    /// this, in (0, 1]. Default 0.5.
    pub onset: f32,
    /// Speech stops when the share of voiced frames in the window falls to
    /// this, in [0, `onset`). Default 0.1.
    pub offset: f32,
    /// Context kept before and after every region, in ms (clamped to the
    /// recording, never overlapping a neighbour). Default 300.
    pub speech_pad_ms: u32,
    /// Regions shorter than this (before padding) are dropped, in ms.
    /// Default 250.
    pub min_speech_ms: u32,
    /// Regions separated by less than this are merged, in ms. Default 1000.
    pub min_silence_ms: u32,
    /// Regions longer than this (after padding) are split, in seconds; at
    /// least 1, `inf` for no limit. Default 30, so that every region fits
    /// one Whisper window.
    pub max_speech_s: f64,
    /// Pack consecutive regions into batches of at most 30 s of speech and
    /// transcribe each batch on its own, as WhisperX does (no prompt from
    /// one batch to the next; the whole recording is held in memory).
    /// Default false: the speech is transcribed as one stream.
    pub pack_into_windows: bool,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            model: "webrtc".into(),
            mode: 3,
            frame_ms: 30,
            window_ms: 300,
            onset: 0.5,
            offset: 0.1,
            speech_pad_ms: 300,
            min_speech_ms: 250,
            min_silence_ms: 1000,
            max_speech_s: 30.0,
            pack_into_windows: false,
        }
    }
}

/// The longest smoothing window accepted, in ms.
const MAX_WINDOW_MS: u32 = 10_000;

impl VadOptions {
    /// Values that cannot work, each as `vad.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = match detector(self) {
            Ok(detector) => detector.problems(self),
            Err(_) => vec![unknown_model(&self.model)],
        };
        if self.window_ms > MAX_WINDOW_MS {
            out.push(format!(
                "vad.window_ms: {} is above {MAX_WINDOW_MS}",
                self.window_ms
            ));
        }
        let onset_ok = self.onset > 0.0 && self.onset <= 1.0;
        if !onset_ok {
            out.push(format!("vad.onset: {} is not in (0, 1]", self.onset));
        }
        if !(self.offset >= 0.0 && self.offset < 1.0) {
            out.push(format!("vad.offset: {} is not in [0, 1)", self.offset));
        } else if onset_ok && self.offset >= self.onset {
            out.push(format!(
                "vad.offset: {} is not below vad.onset ({})",
                self.offset, self.onset
            ));
        }
        if self.max_speech_s.is_nan() || self.max_speech_s < 1.0 {
            out.push(format!(
                "vad.max_speech_s: {} is below 1 s (inf for no limit)",
                self.max_speech_s
            ));
        }
        out
    }

    fn check(&self) -> Result<(), VadError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VadError::Options(problems))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// Invalid [`VadOptions`], every problem listed.
    #[error("{}", .0.join("; "))]
    Options(Vec<String>),
    /// The frame classifier failed.
    #[error("voice activity detection: {0}")]
    Detector(String),
    /// Samples were pushed into a [`VadStage`] after `finish`.
    #[error("voice activity detection: samples after the end of the stream")]
    Finished,
}

/// A stretch of speech, in samples of the 16 kHz recording: `start`
/// inclusive, `end` exclusive.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SpeechRegion {
    pub start: usize,
    pub end: usize,
}

impl SpeechRegion {
    pub fn new(start: usize, end: usize) -> Self {
        SpeechRegion { start, end }
    }

    /// Its length in samples.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start in seconds.
    pub fn start_s(&self) -> f64 {
        self.start as f64 / RATE as f64
    }

    /// End in seconds.
    pub fn end_s(&self) -> f64 {
        self.end as f64 / RATE as f64
    }

    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.len() as f64 / RATE as f64
    }
}

/// Decides frame by frame how likely audio is speech: the part of voice
/// activity detection that differs between detectors. WebRTC's answers 0 or
/// 1; a neural detector answers a probability. Smoothing, merging, padding,
/// splitting and the timeline are shared ([`VadStage::with_classifier`]).
pub trait FrameClassifier: Send {
    /// Samples per frame at 16 kHz.
    fn frame_len(&self) -> usize;
    /// The speech probability of one frame of [`Self::frame_len`] samples
    /// in [-1, 1]; 0.5 and above counts as a voiced frame.
    fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError>;
}

/// A voice-activity detector as the plan sees it: checks its settings,
/// describes itself, and makes the per-recording [`FrameClassifier`] whose
/// decisions the shared region logic ([`VadStage`]) turns into speech
/// regions. A new detector is a module implementing this plus a line in
/// [`DETECTORS`]; `[vad] model = "<name>"` selects it.
pub trait VoiceActivity: Sync {
    /// Problems with the detector's own settings in `opts`.
    fn problems(&self, opts: &VadOptions) -> Vec<String>;
    /// What `pipeline check` prints for it.
    fn describe(&self, opts: &VadOptions) -> String;
    /// A fresh classifier for one recording (recurrent state starts empty).
    fn classifier(&self, opts: &VadOptions) -> Result<Box<dyn FrameClassifier>, VadError>;
}

/// The registered detectors by the name `[vad] model` gives.
pub static DETECTORS: &[(&str, &dyn VoiceActivity)] = &[("webrtc", &WebRtc)];

/// The detector `opts.model` names.
pub fn detector(opts: &VadOptions) -> Result<&'static dyn VoiceActivity, VadError> {
    DETECTORS
        .iter()
        .find(|(name, _)| *name == opts.model)
        .map(|(_, detector)| *detector)
        .ok_or_else(|| VadError::Options(vec![unknown_model(&opts.model)]))
}

fn unknown_model(model: &str) -> String {
    let names: Vec<&str> = DETECTORS.iter().map(|(name, _)| *name).collect();
    format!("vad.model: {model:?} is not one of {}", names.join(", "))
}

/// Speech regions of 16 kHz mono `samples`, in order, disjoint.
pub fn detect_speech(samples: &[f32], opts: &VadOptions) -> Result<Vec<SpeechRegion>, VadError> {
    let mut stage = VadStage::new(opts)?;
    let mut regions = stage.push(samples)?;
    regions.extend(stage.finish()?);
    Ok(regions)
}

#[cfg(test)]
mod tests;
