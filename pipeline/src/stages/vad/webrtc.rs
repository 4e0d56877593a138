//! WebRTC's voice activity detector (libfvad, through the `webrtc-vad`
//! crate): a Gaussian-mixture classifier over six sub-band energies that
//! says speech or not for every 10, 20 or 30 ms frame.

use super::{FrameClassifier, VadError, VadOptions, VoiceActivity, PER_MS};

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
        let problems = settings_problems(mode, frame_ms);
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

    fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError> {
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
fn settings_problems(mode: u8, frame_ms: u32) -> Vec<String> {
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

/// WebRTC's detector as a registered [`VoiceActivity`]: `mode` and
/// `frame_ms` of `[vad]` are its settings.
pub struct WebRtc;

impl VoiceActivity for WebRtc {
    fn problems(&self, opts: &VadOptions) -> Vec<String> {
        settings_problems(opts.mode, opts.frame_ms)
    }

    fn describe(&self, opts: &VadOptions) -> String {
        format!(
            "WebRTC VAD mode {}, {} ms frames, {} ms padding; times mapped back",
            opts.mode, opts.frame_ms, opts.speech_pad_ms
        )
    }

    fn classifier(&self, opts: &VadOptions) -> Result<Box<dyn FrameClassifier>, VadError> {
        Ok(Box::new(WebRtcClassifier::new(opts.mode, opts.frame_ms)?))
    }
}
