//! Silero VAD v6 on MLX ([`asr_models::silero`]) with faster-whisper's
//! speech-segment rules: the default detector.
//!
//! The model gives a speech probability per 512-sample (32 ms) frame, its
//! recurrent state carried across frames and blocks. The stage frames the
//! audio as faster-whisper 1.2.1's `SileroVADModel` does: the samples after
//! the last whole frame are zero-padded to one more frame (a whole frame of
//! zeros when there are none), whose last 64 samples are zeroed (there the
//! padding is made with the previous frames' context array, which is a view
//! of the audio). The probabilities then go through
//! [`SpeechTimestamps`], faster-whisper's `get_speech_timestamps`
//! made streaming.

mod timestamps;

use std::sync::Mutex;

use asr_models::silero::{Silero as SileroModel, SileroState};

use super::{FrameClassifier, VadError, VadOptions, VadStage, VoiceActivity, PER_MS, RATE};

pub use timestamps::SpeechTimestamps;

/// Silero's `[vad]` settings, resolved; faster-whisper's `VadOptions`
/// under this project's names.
///
/// A frame at or above `threshold` starts speech (or resumes it); speech
/// ends when frames stay below `neg_threshold` for `min_silence_ms`, at the
/// first of them. A region longer than `max_speech_s` (its padding
/// included) is split at the last pause of at least 98 ms, else cut where
/// it reached the limit. Regions of `min_speech_ms` or less are dropped.
/// Each region gets `speech_pad_ms` on both sides, except that two regions
/// closer than twice that share the gap between them, split in the middle.
#[derive(Clone, Debug, PartialEq)]
pub struct SileroSettings {
    /// Default 0.5.
    pub threshold: f64,
    /// Default `threshold − 0.15`, at least 0.01.
    pub neg_threshold: f64,
    /// Default 0.
    pub min_speech_ms: u32,
    /// Default 30 (faster-whisper: `inf`; see [`VadOptions`]).
    pub max_speech_s: f64,
    /// Default 2000.
    pub min_silence_ms: u32,
    /// Default 400.
    pub speech_pad_ms: u32,
}

impl Default for SileroSettings {
    fn default() -> Self {
        SileroSettings::from_options(&VadOptions::default())
    }
}

/// Samples per frame.
pub const FRAME: usize = 512;

/// The end of the last frame that faster-whisper's framing zeroes.
const ZEROED_TAIL: usize = 64;

impl SileroSettings {
    /// `opts`' values, defaults where unset.
    pub fn from_options(opts: &VadOptions) -> Self {
        let threshold = opts.threshold.unwrap_or(0.5);
        SileroSettings {
            threshold,
            neg_threshold: opts
                .neg_threshold
                .unwrap_or_else(|| (threshold - 0.15).max(0.01)),
            min_speech_ms: opts.min_speech_ms.unwrap_or(0),
            max_speech_s: opts.max_speech_s.unwrap_or(30.0),
            min_silence_ms: opts.min_silence_ms.unwrap_or(2000),
            speech_pad_ms: opts.speech_pad_ms.unwrap_or(400),
        }
    }

    /// Values that cannot work, each as `vad.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let threshold_ok = self.threshold > 0.0 && self.threshold <= 1.0;
        if !threshold_ok {
            out.push(format!(
                "vad.threshold: {} is not in (0, 1]",
                self.threshold
            ));
        }
        if !(self.neg_threshold >= 0.0 && self.neg_threshold <= 1.0) {
            out.push(format!(
                "vad.neg_threshold: {} is not in [0, 1]",
                self.neg_threshold
            ));
        } else if threshold_ok && self.neg_threshold > self.threshold {
            out.push(format!(
                "vad.neg_threshold: {} is above vad.threshold ({})",
                self.neg_threshold, self.threshold
            ));
        }
        let shortest = (FRAME + 2 * self.speech_pad_ms as usize * PER_MS) as f64 / RATE as f64;
        if self.max_speech_s.is_nan() || self.max_speech_s <= shortest {
            out.push(format!(
                "vad.max_speech_s: {} is not above one frame plus twice the padding ({shortest} s; \
                 inf for no limit)",
                self.max_speech_s
            ));
        }
        out
    }

    /// A stage with these settings (checked) and the registry's model.
    pub fn stage(&self) -> Result<VadStage, VadError> {
        self.stage_with(shared_model()?)
    }

    /// A stage with these settings (checked) and `model`.
    pub fn stage_with(&self, model: SileroModel) -> Result<VadStage, VadError> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(VadError::Options(problems));
        }
        VadStage::with_parts(
            Box::new(SileroClassifier::new(model)?),
            Box::new(SpeechTimestamps::new(self)),
        )
    }
}

/// The registry's model, fetched, converted and loaded once per process.
fn shared_model() -> Result<SileroModel, VadError> {
    static MODEL: Mutex<Option<SileroModel>> = Mutex::new(None);
    let mut slot = MODEL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(model) = slot.as_ref() {
        return Ok(model.clone());
    }
    let fail = |e: String| VadError::Detector(format!("Silero VAD: {e}"));
    let dir = asr_converters::silero::fetch_silero_vad().map_err(|e| fail(e.to_string()))?;
    let model = SileroModel::load(&dir).map_err(|e| fail(e.to_string()))?;
    *slot = Some(model.clone());
    Ok(model)
}

/// Silero VAD's probabilities for one recording.
pub struct SileroClassifier {
    model: SileroModel,
    state: SileroState,
}

impl SileroClassifier {
    pub fn new(model: SileroModel) -> Result<Self, VadError> {
        if model.config.frame_samples as usize != FRAME || model.config.sample_rate as usize != RATE
        {
            return Err(VadError::Detector(format!(
                "Silero VAD: a model of {}-sample frames at {} Hz, expected {FRAME} at {RATE}",
                model.config.frame_samples, model.config.sample_rate
            )));
        }
        let state = model.initial_state().map_err(detector_error)?;
        Ok(SileroClassifier { model, state })
    }
}

fn detector_error(e: asr_models::silero::SileroError) -> VadError {
    VadError::Detector(format!("Silero VAD: {e}"))
}

impl FrameClassifier for SileroClassifier {
    fn frame_len(&self) -> usize {
        FRAME
    }

    fn classify(&mut self, frames: &[f32]) -> Result<Vec<f32>, VadError> {
        self.model
            .probabilities(frames, &mut self.state)
            .map_err(detector_error)
    }

    fn classify_rest(&mut self, rest: &[f32]) -> Result<Option<f32>, VadError> {
        let mut frame = vec![0.0; FRAME];
        let kept = rest.len().min(FRAME - ZEROED_TAIL);
        frame[..kept].copy_from_slice(&rest[..kept]);
        Ok(self.classify(&frame)?.first().copied())
    }
}

/// Silero VAD as a registered [`VoiceActivity`], with the settings of
/// [`SileroSettings`].
pub struct Silero;

impl VoiceActivity for Silero {
    fn keys(&self) -> &'static [&'static str] {
        &["threshold", "neg_threshold"]
    }

    fn problems(&self, opts: &VadOptions) -> Vec<String> {
        SileroSettings::from_options(opts).problems()
    }

    fn describe(&self, opts: &VadOptions) -> String {
        let s = SileroSettings::from_options(opts);
        format!(
            "Silero VAD v6 (MLX), threshold {} / {}, {} ms silence ends speech, {} ms padding, \
             regions ≤ {} s; times mapped back",
            s.threshold, s.neg_threshold, s.min_silence_ms, s.speech_pad_ms, s.max_speech_s
        )
    }

    fn speech_pad_ms(&self, opts: &VadOptions) -> u32 {
        SileroSettings::from_options(opts).speech_pad_ms
    }

    fn stage(&self, opts: &VadOptions) -> Result<VadStage, VadError> {
        SileroSettings::from_options(opts).stage()
    }
}
