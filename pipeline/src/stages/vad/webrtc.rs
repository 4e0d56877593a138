//! WebRTC's voice activity detector (libfvad, through the `webrtc-vad`
//! crate): a Gaussian-mixture classifier over six sub-band energies that
//! says speech or not for every 10, 20 or 30 ms frame, with the smoothing
//! and region rules of [`WebRtcSettings`].

use super::hysteresis::Hysteresis;
use super::{FrameClassifier, VadError, VadOptions, VadStage, VoiceActivity, PER_MS};

/// WebRTC's `[vad]` settings, resolved. Its raw decisions flicker, so they
/// go through these stages, all measured in samples:
///
/// 1. **smoothing** — the last `window_ms` of decisions: speech starts when
///    at least `onset` of them are voiced and stops when at most `offset`
///    are (hysteresis; a region runs from its first to its last voiced frame);
/// 2. **merging** — regions less than `min_silence_ms` apart become one;
/// 3. **dropping** — regions shorter than `min_speech_ms` are discarded;
/// 4. **padding** — `speech_pad_ms` of context on each side, clamped to the
///    recording; where two padded regions would overlap the gap between them
///    is split in the middle, so regions never overlap;
/// 5. **splitting** — a region longer than `max_speech_s` is cut into pieces
///    of at most that length, each cut in the middle of the longest unvoiced
///    run (else after the quietest frame) of the second half of the piece.
#[derive(Clone, Debug, PartialEq)]
pub struct WebRtcSettings {
    /// Aggressiveness, 0 (reports the most speech) to 3 (the least, the
    /// most confident; best against noise and music). Default 3.
    pub mode: u8,
    /// Frame length the detector decides on: 10, 20 or 30 ms. Default 30.
    pub frame_ms: u32,
    /// Smoothing window in ms (at least one frame; 0 means one frame, i.e.
    /// raw decisions). Default 300.
    pub window_ms: u32,
    /// Share of voiced frames in the window that starts speech, in (0, 1].
    /// Default 0.5.
    pub onset: f32,
    /// Share at or below which speech stops, in [0, `onset`). Default 0.1.
    pub offset: f32,
    /// Context kept before and after every region, in ms. Default 300.
    pub speech_pad_ms: u32,
    /// Regions shorter than this (before padding) are dropped, in ms.
    /// Default 250.
    pub min_speech_ms: u32,
    /// Regions separated by less than this are merged, in ms. Default 1000.
    pub min_silence_ms: u32,
    /// Regions longer than this (after padding) are split, in seconds; at
    /// least 1, `inf` for no limit. Default 30 (one Whisper window).
    pub max_speech_s: f64,
}

impl Default for WebRtcSettings {
    fn default() -> Self {
        WebRtcSettings {
            mode: 3,
            frame_ms: 30,
            window_ms: 300,
            onset: 0.5,
            offset: 0.1,
            speech_pad_ms: 300,
            min_speech_ms: 250,
            min_silence_ms: 1000,
            max_speech_s: 30.0,
        }
    }
}

/// The longest smoothing window accepted, in ms.
const MAX_WINDOW_MS: u32 = 10_000;

impl WebRtcSettings {
    /// `opts`' values, defaults where unset.
    pub fn from_options(opts: &VadOptions) -> Self {
        let d = WebRtcSettings::default();
        WebRtcSettings {
            mode: opts.mode.unwrap_or(d.mode),
            frame_ms: opts.frame_ms.unwrap_or(d.frame_ms),
            window_ms: opts.window_ms.unwrap_or(d.window_ms),
            onset: opts.onset.unwrap_or(d.onset),
            offset: opts.offset.unwrap_or(d.offset),
            speech_pad_ms: opts.speech_pad_ms.unwrap_or(d.speech_pad_ms),
            min_speech_ms: opts.min_speech_ms.unwrap_or(d.min_speech_ms),
            min_silence_ms: opts.min_silence_ms.unwrap_or(d.min_silence_ms),
            max_speech_s: opts.max_speech_s.unwrap_or(d.max_speech_s),
        }
    }

    /// Values that cannot work, each as `vad.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = classifier_problems(self.mode, self.frame_ms);
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

    /// A stage with these settings (checked).
    pub fn stage(&self) -> Result<VadStage, VadError> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(VadError::Options(problems));
        }
        let classifier = WebRtcClassifier::new(self.mode, self.frame_ms)?;
        let rules = Hysteresis::new(self, classifier.frame_len);
        VadStage::with_parts(Box::new(classifier), Box::new(rules))
    }
}

/// WebRTC's detector (libfvad) at 16 kHz.
pub struct WebRtcClassifier {
    vad: webrtc_vad::Vad,
    frame_len: usize,
    pcm: Vec<i16>,
}

// SAFETY: a libfvad instance is one heap allocation that the C code reaches
// only through the pointer handed to it; the library keeps no global or
// thread-local state besides constant tables. `WebRtcClassifier` is not
// `Sync` and uses the instance through `&mut self` only, so moving it to
// another thread is sound.
unsafe impl Send for WebRtcClassifier {}

impl WebRtcClassifier {
    /// `mode` 0–3, `frame_ms` 10, 20 or 30.
    pub fn new(mode: u8, frame_ms: u32) -> Result<Self, VadError> {
        let problems = classifier_problems(mode, frame_ms);
        if !problems.is_empty() {
            return Err(VadError::Options(problems));
        }
        use webrtc_vad::{SampleRate, Vad, VadMode};
        let mode = match mode {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        Ok(WebRtcClassifier {
            vad: Vad::new_with_rate_and_mode(SampleRate::Rate16kHz, mode),
            frame_len: frame_ms as usize * PER_MS,
            pcm: Vec::with_capacity(frame_ms as usize * PER_MS),
        })
    }
}

impl FrameClassifier for WebRtcClassifier {
    fn frame_len(&self) -> usize {
        self.frame_len
    }

    fn classify(&mut self, frames: &[f32]) -> Result<Vec<f32>, VadError> {
        frames
            .chunks(self.frame_len)
            .map(|frame| self.decide(frame))
            .collect()
    }
}

impl WebRtcClassifier {
    /// 1 for speech, 0 for none.
    fn decide(&mut self, frame: &[f32]) -> Result<f32, VadError> {
        if frame.len() != self.frame_len {
            return Err(VadError::Detector(format!(
                "frame of {} samples, expected {}",
                frame.len(),
                self.frame_len
            )));
        }
        self.pcm.clear();
        self.pcm.extend(
            frame
                .iter()
                .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        match self.vad.is_voice_segment(&self.pcm) {
            Ok(true) => Ok(1.0),
            Ok(false) => Ok(0.0),
            Err(()) => Err(VadError::Detector("libfvad refused the frame".into())),
        }
    }
}

/// `mode` 0–3 and `frame_ms` 10, 20 or 30, each as `vad.<key>: <reason>`.
fn classifier_problems(mode: u8, frame_ms: u32) -> Vec<String> {
    let mut out = Vec::new();
    if mode > 3 {
        out.push(format!(
            "vad.mode: {mode} is not one of 0, 1, 2, 3 (aggressiveness)"
        ));
    }
    if ![10, 20, 30].contains(&frame_ms) {
        out.push(format!("vad.frame_ms: {frame_ms} is not one of 10, 20, 30"));
    }
    out
}

/// WebRTC's detector as a registered [`VoiceActivity`], with the settings
/// of [`WebRtcSettings`].
pub struct WebRtc;

impl VoiceActivity for WebRtc {
    fn keys(&self) -> &'static [&'static str] {
        &["mode", "frame_ms", "window_ms", "onset", "offset"]
    }

    fn problems(&self, opts: &VadOptions) -> Vec<String> {
        WebRtcSettings::from_options(opts).problems()
    }

    fn describe(&self, opts: &VadOptions) -> String {
        let s = WebRtcSettings::from_options(opts);
        format!(
            "WebRTC VAD mode {}, {} ms frames, {} ms padding; times mapped back",
            s.mode, s.frame_ms, s.speech_pad_ms
        )
    }

    fn speech_pad_ms(&self, opts: &VadOptions) -> u32 {
        WebRtcSettings::from_options(opts).speech_pad_ms
    }

    fn stage(&self, opts: &VadOptions) -> Result<VadStage, VadError> {
        WebRtcSettings::from_options(opts).stage()
    }
}
