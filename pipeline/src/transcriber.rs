//! Whisper over a whole recording: the model resolved from a registry name or
//! any checkpoint (converted once into the cache), then 30-second windows
//! decoded greedily one after another.

use asr_converters::ConvertError;
use asr_models::features::{LogMel, HOP_LENGTH, SAMPLE_RATE};
use asr_models::whisper::{
    greedy_without_timestamps, LoadError, Suppression, Whisper, WhisperTokenizer,
};
use mlx::Array;

use crate::model_source::resolve_model;
use crate::output::{Segment, Transcript};

/// One window of audio, as Whisper was trained on.
const WINDOW_SECONDS: usize = 30;
/// openai-whisper's silence rule: skip a window whose `<|nospeech|>`
/// probability is high while the decoded text is not confident.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOGPROB_THRESHOLD: f32 = -1.0;

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Tokenizer(String),
    #[error("MLX: {0}")]
    Mlx(#[from] mlx::Error),
}

/// A loaded model ready to transcribe any number of recordings.
pub struct Transcriber {
    model: Whisper,
    tokenizer: WhisperTokenizer,
    suppression: Suppression,
    log_mel: LogMel,
}

impl Transcriber {
    pub fn load(spec: &str) -> Result<Transcriber, TranscribeError> {
        let dir = resolve_model(spec)?;
        let model = Whisper::load(&dir)?;
        let tokenizer = WhisperTokenizer::load(&dir.join("tokenizer.json"))
            .map_err(TranscribeError::Tokenizer)?;
        let suppression = tokenizer.default_suppression();
        let log_mel = LogMel::new(model.config.n_mels as usize)?;
        Ok(Transcriber {
            model,
            tokenizer,
            suppression,
            log_mel,
        })
    }

    /// Log-mel frames of the whole recording, as openai-whisper's
    /// `transcribe` computes them: over the audio followed by one window of
    /// silence (so the clamp to `max - 8` is global).
    fn recording_mel(&self, samples: &[f32]) -> mlx::Result<Array> {
        let mut padded = samples.to_vec();
        padded.resize(samples.len() + WINDOW_SECONDS * SAMPLE_RATE, 0.0);
        self.log_mel
            .forward(&Array::from_slice(&padded, &[padded.len() as i32])?)
    }

    /// Window `index` of `mel`: its content frames, then zeros up to a full
    /// window (zeros of the normalized log-mel, as openai-whisper's
    /// `pad_or_trim` of the mel segment gives), `[1, 3000, n_mels]`.
    fn window_mel(mel: &Array, index: usize, content_frames: usize) -> mlx::Result<Array> {
        let frames = WINDOW_SECONDS * SAMPLE_RATE / HOP_LENGTH;
        let start = index * frames;
        let len = frames.min(content_frames - start);
        let segment = mel.slice_axis(0, start as i32, (start + len) as i32)?;
        segment
            .pad(&[0], &[0], &[(frames - len) as i32], 0.0)?
            .expand_dims(&[0])
    }

    /// Transcribes 16 kHz mono `samples`; `progress(done, total)` per window.
    pub fn transcribe(
        &self,
        samples: &[f32],
        progress: &dyn Fn(usize, usize),
    ) -> Result<Transcript, TranscribeError> {
        let window = WINDOW_SECONDS * SAMPLE_RATE;
        let total = samples.len().div_ceil(window).max(1);
        let content_frames = samples.len() / HOP_LENGTH;
        let recording = self.recording_mel(samples)?;
        let mut segments = Vec::new();
        for (i, chunk) in samples.chunks(window).enumerate() {
            let mel = Self::window_mel(&recording, i, content_frames)?;
            let result = greedy_without_timestamps(
                &self.model,
                &mel,
                &self.tokenizer.special,
                &self.suppression,
            )?;
            progress(i + 1, total);
            if result.no_speech_prob > NO_SPEECH_THRESHOLD && result.avg_logprob < LOGPROB_THRESHOLD
            {
                tracing::debug!(
                    window = i,
                    no_speech_prob = result.no_speech_prob,
                    "skipping silent window"
                );
                continue;
            }
            let text = self
                .tokenizer
                .decode(&result.tokens)
                .map_err(TranscribeError::Tokenizer)?;
            let start = (i * window) as f64 / SAMPLE_RATE as f64;
            segments.push(Segment {
                start,
                end: start + chunk.len() as f64 / SAMPLE_RATE as f64,
                text,
                avg_logprob: result.avg_logprob,
                no_speech_prob: result.no_speech_prob,
            });
        }
        let text = segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Transcript { text, segments })
    }
}
