//! Voice activity detection: which stretches of a 16 kHz mono recording hold
//! speech, and the bookkeeping that lets a model transcribe only those.
//!
//! Two detectors are registered in [`DETECTORS`], each with its own frame
//! classifier and its own rules for turning frame probabilities into
//! regions ([`VoiceActivity::stage`]):
//!
//! - `silero` (the default): Silero VAD v6 on MLX, a speech probability per
//!   32 ms frame, with faster-whisper's `get_speech_timestamps` rules
//!   (threshold and release threshold, minimum silence and speech, maximum
//!   length split at the last pause, padding); see [`silero`];
//! - `webrtc`: WebRTC's detector (libfvad), speech or not per 10–30 ms
//!   frame, smoothed by hysteresis over a window, then merged, dropped,
//!   padded and split; see [`WebRtcSettings`].
//!
//! [`detect_speech`] finds the regions of a slice; [`VadStage`] does the same
//! on blocks as they arrive (identical regions whatever the block sizes), and
//! [`SpeechBlocks`] wraps a block iterator such as
//! [`crate::stages::audio::AudioStream`] to yield only the speech, in memory
//! bounded by the longest region. A [`SpeechTimeline`] maps times on the
//! gathered speech back to the recording; [`pack`] groups regions into
//! ≤ 30 s batches (WhisperX).
//!
//! ```
//! use asr_pipeline::stages::vad::{detect_speech, SpeechTimeline, VadOptions};
//!
//! let samples = vec![0.0f32; 16_000 * 5]; // five seconds of silence
//! let regions = detect_speech(&samples, &VadOptions::webrtc()).unwrap();
//! assert!(regions.is_empty());
//! let timeline = SpeechTimeline::new(regions);
//! assert!(timeline.gather(&samples).is_empty());
//! ```
mod hysteresis;
pub mod silero;
mod speech_blocks;
mod stage;
mod timeline;
mod webrtc;

use serde::{Deserialize, Serialize};

use crate::stages::audio::SAMPLE_RATE;

pub use silero::{Silero, SileroSettings};
pub use speech_blocks::SpeechBlocks;
pub use stage::VadStage;
pub use timeline::{pack, SpeechTimeline};
pub use webrtc::{WebRtc, WebRtcClassifier, WebRtcSettings};

const RATE: usize = SAMPLE_RATE as usize;

/// Samples per millisecond at [`SAMPLE_RATE`].
const PER_MS: usize = RATE / 1000;

/// The `[vad]` table of a run configuration: the detector and its settings.
///
/// `model` picks the detector (default `"silero"`). Unset settings take the
/// detector's defaults; a setting of the other detector is an error.
///
/// | key | `silero` | `webrtc` |
/// |---|---|---|
/// | `threshold` | 0.5: a frame at or above it is speech | — |
/// | `neg_threshold` | `threshold` − 0.15 (at least 0.01): speech ends below it | — |
/// | `mode` | — | 3: aggressiveness 0 (most speech) … 3 (least) |
/// | `frame_ms` | — | 30: 10, 20 or 30 |
/// | `window_ms` | — | 300: smoothing window over the frame decisions |
/// | `onset` | — | 0.5: share of voiced frames in the window that starts speech |
/// | `offset` | — | 0.1: share at or below which speech stops |
/// | `speech_pad_ms` | 400 | 300 |
/// | `min_speech_ms` | 0 | 250 |
/// | `min_silence_ms` | 2000 | 1000 |
/// | `max_speech_s` | 30 | 30 |
///
/// Silero's defaults are faster-whisper's `VadOptions`, except
/// `max_speech_s`: faster-whisper's `inf` lets a region (and the audio held
/// for it while streaming) grow without bound; 30 s keeps every region
/// within one Whisper window. `max_speech_s = inf` gives faster-whisper's
/// exact defaults. What each setting means for each detector:
/// [`SileroSettings`], [`WebRtcSettings`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadOptions {
    /// The detector, by its name in [`DETECTORS`]. Default `"silero"`.
    pub model: String,
    pub threshold: Option<f64>,
    pub neg_threshold: Option<f64>,
    pub mode: Option<u8>,
    pub frame_ms: Option<u32>,
    pub window_ms: Option<u32>,
    pub onset: Option<f32>,
    pub offset: Option<f32>,
    pub speech_pad_ms: Option<u32>,
    pub min_speech_ms: Option<u32>,
    pub min_silence_ms: Option<u32>,
    pub max_speech_s: Option<f64>,
    /// Pack consecutive regions into batches of at most 30 s of speech and
    /// transcribe each batch on its own, as WhisperX does (no prompt from
    /// one batch to the next; the whole recording is held in memory).
    /// Default false: the speech is transcribed as one stream.
    pub pack_into_windows: bool,
}

/// The detector `[vad]` uses when `model` is not given.
pub const DEFAULT_DETECTOR: &str = "silero";

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            model: DEFAULT_DETECTOR.into(),
            threshold: None,
            neg_threshold: None,
            mode: None,
            frame_ms: None,
            window_ms: None,
            onset: None,
            offset: None,
            speech_pad_ms: None,
            min_speech_ms: None,
            min_silence_ms: None,
            max_speech_s: None,
            pack_into_windows: false,
        }
    }
}

impl VadOptions {
    /// WebRTC's detector with its defaults.
    pub fn webrtc() -> Self {
        VadOptions {
            model: "webrtc".into(),
            ..VadOptions::default()
        }
    }

    /// The settings only some detectors read, by key, and whether each is set.
    fn detector_keys(&self) -> [(&'static str, bool); 7] {
        [
            ("threshold", self.threshold.is_some()),
            ("neg_threshold", self.neg_threshold.is_some()),
            ("mode", self.mode.is_some()),
            ("frame_ms", self.frame_ms.is_some()),
            ("window_ms", self.window_ms.is_some()),
            ("onset", self.onset.is_some()),
            ("offset", self.offset.is_some()),
        ]
    }

    /// Values that cannot work, each as `vad.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let detector = match detector(self) {
            Ok(detector) => detector,
            Err(_) => return vec![unknown_model(&self.model)],
        };
        let mut out = Vec::new();
        for (key, set) in self.detector_keys() {
            if set && !detector.keys().contains(&key) {
                let owner = DETECTORS
                    .iter()
                    .find(|(_, d)| d.keys().contains(&key))
                    .map_or("another", |(name, _)| *name);
                out.push(format!(
                    "vad.{key}: a setting of the {owner} detector, not of {} (vad.model)",
                    self.model
                ));
            }
        }
        out.extend(detector.problems(self));
        out
    }

    /// Context kept on each side of a region, in ms, as the detector
    /// resolves it (0 for an unknown detector).
    pub fn speech_pad_ms(&self) -> u32 {
        detector(self).map_or(0, |d| d.speech_pad_ms(self))
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

/// Decides frame by frame how likely audio is speech: the model part of a
/// detector, with whatever state it carries from frame to frame.
pub trait FrameClassifier: Send {
    /// Samples per frame at 16 kHz.
    fn frame_len(&self) -> usize;
    /// The speech probability of each frame of `frames` (a whole number of
    /// [`Self::frame_len`] samples in [-1, 1]), in order.
    fn classify(&mut self, frames: &[f32]) -> Result<Vec<f32>, VadError>;
    /// At the end of the stream, the probability of `rest`, the samples
    /// after the last whole frame (maybe none), or `None` when the detector
    /// leaves them out.
    fn classify_rest(&mut self, rest: &[f32]) -> Result<Option<f32>, VadError> {
        let _ = rest;
        Ok(None)
    }
}

/// Turns per-frame speech probabilities into speech regions, frame by
/// frame: the segmenting part of a detector. Regions come out final, in
/// order, disjoint.
pub trait RegionRules: Send {
    /// The next frame's samples and speech probability; regions that became
    /// final go to `out`.
    fn frame(&mut self, frame: &[f32], probability: f32, out: &mut Vec<SpeechRegion>);
    /// The recording ended after `samples` samples; the remaining regions go
    /// to `out`.
    fn finish(&mut self, samples: usize, out: &mut Vec<SpeechRegion>);
    /// Every sample before this index is either in a region already
    /// returned or in none that will be.
    fn retain_from(&self) -> usize;
    /// Context added on each side of a region, in samples.
    fn pad(&self) -> usize;
}

/// A voice-activity detector as the plan sees it: its `[vad]` settings,
/// checks and description, and the per-recording [`VadStage`] (a
/// [`FrameClassifier`] and its [`RegionRules`]). A new detector is a module
/// implementing this plus a line in [`DETECTORS`]; `[vad] model = "<name>"`
/// selects it.
pub trait VoiceActivity: Sync {
    /// The detector-specific `[vad]` keys it reads (the shared ones,
    /// `speech_pad_ms`, `min_speech_ms`, `min_silence_ms`, `max_speech_s`,
    /// every detector reads with its own defaults).
    fn keys(&self) -> &'static [&'static str];
    /// Problems with the values of its settings in `opts`.
    fn problems(&self, opts: &VadOptions) -> Vec<String>;
    /// What `pipeline check` prints for it.
    fn describe(&self, opts: &VadOptions) -> String;
    /// `speech_pad_ms` as it resolves for this detector.
    fn speech_pad_ms(&self, opts: &VadOptions) -> u32;
    /// A fresh stage for one recording (recurrent state starts empty);
    /// `opts` are checked.
    fn stage(&self, opts: &VadOptions) -> Result<VadStage, VadError>;
}

/// The registered detectors by the name `[vad] model` gives.
pub static DETECTORS: &[(&str, &dyn VoiceActivity)] = &[("silero", &Silero), ("webrtc", &WebRtc)];

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
