//! The embedding API: a [`Pipeline`] is a loaded [`StagePlan`]. It is
//! built once (from a config file, a TOML string or a builder), holds the
//! loaded stages, and runs them on any number of files or sample buffers,
//! from any number of threads.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use asr_models::whisper::constants::WINDOW_SECONDS;
use asr_models::{Quantize, QuantizeChoice};

use crate::config::decode::DecodeOptions;
use crate::config::{Config, DeviceName};
use crate::panic_guard::{catch_panic, guard_file, InternalError};
use crate::plan::{resolve_quantize, PlanSettings, StagePlan};
use crate::stages::align::{AlignOptions, AlignStage, Aligner};
use crate::stages::audio::{AudioError, Recording};
use crate::stages::diarize::{load_diarizer, DiarizationOptions, DiarizeStage, Diarizer};
use crate::stages::transcribe::{
    family_for, Batching, Blocks, Recognizer, RecognizerSettings, TranscribeError,
};
use crate::stages::vad::{detect_speech, pack, SpeechBlocks, SpeechTimeline, VadError, VadOptions};
use crate::stages::{StageError, TranscriptStage};
use crate::transcript::{Progress, Transcript};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid pipeline settings: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Transcribe(#[from] TranscribeError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Vad(#[from] VadError),
    #[error("MLX: {0}")]
    Mlx(#[from] mlx::Error),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// A loaded speech pipeline. `Send + Sync`: share one behind an `Arc`;
/// transcriptions from several threads take turns on the model (MLX
/// evaluation is not re-entrant), audio decoding and hooks run in parallel.
///
/// ```no_run
/// use asr_pipeline::{DecodeOptions, Pipeline};
/// use asr_pipeline::stages::vad::VadOptions;
///
/// let pipeline = Pipeline::builder()
///     .model("tiny.en")
///     .decode(DecodeOptions { word_timestamps: true, ..DecodeOptions::default() })
///     .vad(VadOptions::default())
///     .build()?;
/// let transcript = pipeline.transcribe_file("examples/audio/jfk.wav".as_ref())?;
/// for segment in &transcript.segments {
///     for w in &segment.words {
///         println!("{:6.2} {:6.2} {}", w.word.start, w.word.end, w.word.word);
///     }
/// }
/// # Ok::<(), asr_pipeline::PipelineError>(())
/// ```
pub struct Pipeline {
    plan: StagePlan,
    recognizer: Mutex<Box<dyn Recognizer>>,
    /// What the recognizer was loaded from, to check other decode settings.
    model: String,
    quantize: Quantize,
    batching: Batching,
    decode: DecodeOptions,
    vad: Option<VadOptions>,
    /// Aligners, diarizers and any other stage after recognition, in order.
    after_recognition: Vec<Box<dyn TranscriptStage>>,
}

/// Settings for [`Pipeline::builder`]; defaults are `pipeline run`'s.
pub struct PipelineBuilder {
    model: String,
    quantize: QuantizeChoice,
    device: DeviceName,
    decode: DecodeOptions,
    vad: Option<VadOptions>,
    after_recognition: Vec<Box<dyn TranscriptStage>>,
}

impl PipelineBuilder {
    /// A registry name (`tiny.en`, `base`), a Hugging Face repo id, an MLX
    /// folder or any checkpoint `pipeline convert` reads.
    pub fn model(mut self, spec: impl Into<String>) -> Self {
        self.model = spec.into();
        self
    }

    /// Quantize the weights when the pipeline converts the model (registry
    /// names, Hub repos, checkpoints): 8-bit reads half the bytes of f16 per
    /// decoded token. With `Activations::Int8` (8-bit weights, converted
    /// here or an MLX folder stored so) the encoder's and prompts' products
    /// round their activations to int8 where the CPU kernels have an int8
    /// product, as faster-whisper's `compute_type="int8"` does: a faster
    /// encoder, outputs no longer those of the f32 product. The default,
    /// [`QuantizeChoice::Auto`], picks for the CPU at hand (see
    /// [`asr_models::Quantize::auto`]); `Quantize::default()` keeps the
    /// published weights and f32 activations, openai-whisper's outputs.
    pub fn quantize(mut self, quantize: impl Into<QuantizeChoice>) -> Self {
        self.quantize = quantize.into();
        self
    }

    /// Where MLX runs (process-wide: MLX has one default device).
    pub fn device(mut self, device: DeviceName) -> Self {
        self.device = device;
        self
    }

    pub fn decode(mut self, options: DecodeOptions) -> Self {
        self.decode = options;
        self
    }

    /// Transcribe only the speech voice activity detection finds (times
    /// stay those of the recording).
    pub fn vad(mut self, options: VadOptions) -> Self {
        self.vad = Some(options);
        self
    }

    /// Times the words after recognition (runs in the order added).
    pub fn aligner(self, aligner: impl Aligner + 'static) -> Self {
        self.after_recognition(AlignStage(Box::new(aligner)))
    }

    /// Labels segments and words with speakers after recognition.
    pub fn diarizer(self, diarizer: impl Diarizer + 'static) -> Self {
        self.after_recognition(DiarizeStage(Box::new(diarizer)))
    }

    /// Any stage that works on the recording and its transcript. A stage
    /// holding MLX arrays is used from the threads that transcribe: load
    /// its model inside [`mlx::evaluating_created`] (as
    /// [`Pipeline::from_config`] loads aligners and diarizers), or an array
    /// it left lazy fails on any thread but the loading one.
    pub fn after_recognition(mut self, stage: impl TranscriptStage + 'static) -> Self {
        self.after_recognition.push(Box::new(stage));
        self
    }

    /// Validates every setting (all problems reported at once), then loads
    /// the model, fetching or converting it first when needed.
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        let settings = PlanSettings {
            model: &self.model,
            quantize: resolve_quantize(self.quantize, &self.model),
            device: self.device,
            decode: &self.decode,
            vad: self.vad.as_ref(),
            after_recognition: self.after_recognition.iter().map(|s| s.info()).collect(),
            formats: &[],
        };
        let plan = StagePlan::new(&settings).map_err(PipelineError::Invalid)?;
        let family = family_for(&self.model).expect("the plan found a model family");
        mlx::set_default_device(match self.device {
            DeviceName::Cpu => mlx::Device::Cpu,
            DeviceName::Gpu => mlx::Device::Gpu,
        })?;
        // Evaluated here so that any thread can use the model.
        let recognizer = mlx::evaluating_created(|| family.load(&settings.recognizer()))?;
        Ok(Pipeline {
            plan,
            recognizer: Mutex::new(recognizer),
            quantize: settings.quantize,
            batching: settings.batching(),
            model: self.model,
            decode: self.decode,
            vad: self.vad,
            after_recognition: self.after_recognition,
        })
    }
}

impl Pipeline {
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder {
            model: "tiny.en".into(),
            quantize: QuantizeChoice::Auto,
            device: DeviceName::Cpu,
            decode: DecodeOptions::default(),
            vad: None,
            after_recognition: Vec::new(),
        }
    }

    /// The model, device, `[decode]`, `[vad]`, `[align]` and `[diarization]` settings
    /// of a run configuration (its inputs and outputs are the caller's
    /// business).
    pub fn from_config(config: &Config) -> Result<Pipeline, PipelineError> {
        Pipeline::plan(config)?;
        // The aligner's and diarizer's models too are evaluated here, so that
        // any thread can use them.
        mlx::evaluating_created(|| Pipeline::load_config(config))
    }

    /// The stages [`Pipeline::from_config`] would build, or every problem
    /// with the settings it reads, found without loading any model.
    pub fn plan(config: &Config) -> Result<StagePlan, PipelineError> {
        let settings = PlanSettings {
            formats: &[],
            ..PlanSettings::of_config(config)
        };
        let (plan, mut problems) = match StagePlan::new(&settings) {
            Ok(plan) => (Some(plan), Vec::new()),
            Err(problems) => (None, problems),
        };
        problems.extend(config.align.iter().flat_map(AlignOptions::problems));
        problems.extend(
            config
                .diarization
                .iter()
                .flat_map(DiarizationOptions::problems),
        );
        match plan {
            Some(plan) if problems.is_empty() => Ok(plan),
            _ => Err(PipelineError::Invalid(problems)),
        }
    }

    fn load_config(config: &Config) -> Result<Pipeline, PipelineError> {
        let mut builder = Pipeline::builder()
            .model(config.model.clone())
            .quantize(config.quantize)
            .device(config.device)
            .decode(config.decode.clone());
        builder.vad = config.vad.clone();
        if let Some(opts) = &config.align {
            builder = builder.aligner(opts.load()?);
        }
        if let Some(opts) = &config.diarization {
            builder = builder.diarizer(load_diarizer(opts)?);
        }
        builder.build()
    }

    /// [`Pipeline::from_config`] for TOML text; relative paths are taken
    /// from `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Pipeline, PipelineError> {
        let config = Config::from_toml(text, base).map_err(|e| PipelineError::Invalid(vec![e]))?;
        Pipeline::from_config(&config)
    }

    /// Transcribes an audio file, streamed in bounded memory (unless voice
    /// activity packs speech into windows, which needs it whole); the
    /// stages after recognition stream it again, except aligners, which
    /// load it. A panic on the way is this file's [`PipelineError::Internal`].
    pub fn transcribe_file(&self, path: &Path) -> Result<Transcript, PipelineError> {
        self.transcribe_file_with_progress(path, &|_| {})
    }

    pub fn transcribe_file_with_progress(
        &self,
        path: &Path,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, PipelineError> {
        self.transcribe_alone(Recording::File(path), &self.decode, progress)
    }

    /// Transcribes several audio files, one result per file in order (see
    /// [`Pipeline::transcribe_many`]).
    pub fn transcribe_files(
        &self,
        paths: &[&Path],
        progress: &dyn Fn(usize, Progress),
    ) -> Vec<Result<Transcript, PipelineError>> {
        let recordings: Vec<Recording> = paths.iter().map(|p| Recording::File(p)).collect();
        self.transcribe_many(&recordings, &self.decode, progress)
    }

    /// Transcribes several recordings with `options` in place of the
    /// pipeline's own decode settings (check them first with
    /// [`Pipeline::check_decode`]), one result per recording in order (one
    /// that fails does not stop the others). Without voice activity
    /// detection the recognizer may decode them side by side (up to
    /// `options.batch_size`): the same transcripts, sooner; should that
    /// panic, each is transcribed alone, so that only the one at fault
    /// fails. The stages after recognition then run on each. `progress`
    /// hears of recording i as `(i, progress)`.
    pub fn transcribe_many(
        &self,
        recordings: &[Recording<'_>],
        options: &DecodeOptions,
        progress: &dyn Fn(usize, Progress),
    ) -> Vec<Result<Transcript, PipelineError>> {
        if self.vad.is_some() {
            return recordings
                .iter()
                .enumerate()
                .map(|(i, &r)| self.transcribe_alone(r, options, &|p| progress(i, p)))
                .collect();
        }
        let _span = tracing::info_span!("recordings", count = recordings.len()).entered();
        let mut results: Vec<Option<Result<Transcript, PipelineError>>> = Vec::new();
        let (mut streams, mut durations, mut opened) =
            (Vec::<Blocks>::new(), Vec::new(), Vec::new());
        for (i, recording) in recordings.iter().enumerate() {
            let blocks = guard_file(&recording.name(), || recording.open())
                .map_err(PipelineError::from)
                .and_then(|opened| opened.map_err(PipelineError::from));
            match blocks {
                Ok((blocks, duration)) => {
                    durations.push(duration);
                    streams.push(blocks);
                    opened.push(i);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let side_by_side = catch_panic(|| {
            self.lock().transcribe_many(streams, options, &|j, p| {
                let total = p.total.or(durations[j]);
                progress(opened[j], Progress { total, ..p })
            })
        });
        let recognized: Vec<_> = match side_by_side {
            Ok(recognized) => recognized
                .into_iter()
                .zip(&opened)
                .map(|(r, &i)| {
                    let mut transcript = r?;
                    guard_file(&recordings[i].name(), || {
                        self.after_recognition(recordings[i], &mut transcript, &|p| progress(i, p))
                    })??;
                    Ok(transcript)
                })
                .collect(),
            Err(message) => {
                tracing::warn!(%message, "a panic while transcribing recordings side by side: each is transcribed alone");
                opened
                    .iter()
                    .map(|&i| self.transcribe_alone(recordings[i], options, &|p| progress(i, p)))
                    .collect()
            }
        };
        for (i, result) in opened.into_iter().zip(recognized) {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.expect("every recording has a result"))
            .collect()
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, PipelineError> {
        self.transcribe_with_progress(samples, &|_| {})
    }

    pub fn transcribe_with_progress(
        &self,
        samples: &[f32],
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, PipelineError> {
        self.transcribe_alone(Recording::Samples(samples), &self.decode, progress)
    }

    /// Problems of decoding with `options` instead of the pipeline's own
    /// decode settings, in `pipeline check`'s words; empty when there are
    /// none.
    pub fn check_decode(&self, options: &DecodeOptions) -> Vec<String> {
        let family = family_for(&self.model).expect("the plan found a model family");
        let settings = RecognizerSettings {
            decode: options,
            ..self.recognizer_settings()
        };
        family.plan(&settings).err().unwrap_or_default()
    }

    /// One recording through every stage, a panic on the way its error.
    fn transcribe_alone(
        &self,
        recording: Recording<'_>,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, PipelineError> {
        guard_file(&recording.name(), || {
            let _span =
                tracing::info_span!("recording", name = %recording.name().display()).entered();
            let (blocks, duration) = recording.open()?;
            // With voice activity detection only the speech is counted.
            let duration = duration.filter(|_| self.vad.is_none());
            let mut transcript = self.recognize(blocks, options, &|p| {
                progress(Progress {
                    total: p.total.or(duration),
                    ..p
                })
            })?;
            self.after_recognition(recording, &mut transcript, progress)?;
            Ok(transcript)
        })?
    }

    /// The stages after recognition, in order, each reading the recording
    /// again (a file is streamed anew rather than held).
    fn after_recognition(
        &self,
        recording: Recording<'_>,
        transcript: &mut Transcript,
        progress: &dyn Fn(Progress),
    ) -> Result<(), PipelineError> {
        let total = recording.duration();
        for stage in &self.after_recognition {
            let info = stage.info();
            let _span = tracing::info_span!("stage", name = info.name).entered();
            let started = Instant::now();
            stage.run(recording, transcript, &|p| {
                progress(Progress {
                    total: p.total.or(total),
                    ..p
                })
            })?;
            transcript
                .timings
                .after_recognition
                .push((info.implementation, started.elapsed().as_secs_f64()));
        }
        Ok(())
    }

    /// The voice-activity and recognizer stages over consecutive 16 kHz
    /// blocks (segment and word times mapped back to the recording).
    fn recognize(
        &self,
        blocks: Blocks<'_>,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, PipelineError> {
        let recognizer = self.lock();
        let Some(vad) = &self.vad else {
            return Ok(recognizer.transcribe(blocks, options, progress)?);
        };
        if vad.pack_into_windows {
            let samples = blocks.collect::<Result<Vec<Vec<f32>>, _>>()?.concat();
            return self.recognize_packed(&**recognizer, &samples, vad, options, progress);
        }
        let mut speech = SpeechBlocks::new(blocks, vad)?;
        let mut transcript = recognizer.transcribe(Box::new(speech.by_ref()), options, progress)?;
        let timeline = speech.into_timeline()?;
        tracing::info!(
            regions = timeline.len(),
            speech_seconds = timeline.duration(),
            "voice activity detection"
        );
        timeline.map_transcript(&mut transcript);
        Ok(transcript)
    }

    /// WhisperX-style: the speech regions packed into ≤ 30 s batches, each
    /// transcribed on its own (handed to the recognizer together, which may
    /// decode them side by side) and mapped back, the results joined.
    fn recognize_packed(
        &self,
        recognizer: &dyn Recognizer,
        samples: &[f32],
        vad: &VadOptions,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, PipelineError> {
        let regions = detect_speech(samples, vad)?;
        let pad = f64::from(vad.speech_pad_ms()) / 1000.0;
        let timelines: Vec<SpeechTimeline> = pack(&regions, WINDOW_SECONDS as f64)
            .into_iter()
            .map(|batch| SpeechTimeline::new(batch).with_join_tolerance(pad))
            .collect();
        if timelines.is_empty() {
            // No speech at all: an empty transcript, as the streaming path gives.
            let nothing = Box::new(std::iter::once(Ok(Vec::new())));
            return Ok(recognizer.transcribe(nothing, options, progress)?);
        }
        // Each piece's audio is gathered when its batch comes up.
        let pieces: Vec<Blocks> = timelines
            .iter()
            .map(|t| Box::new(std::iter::once_with(|| Ok(t.gather(samples)))) as Blocks)
            .collect();
        let starts: Vec<f64> = timelines
            .iter()
            .scan(0.0, |at, t| {
                let start = *at;
                *at += t.duration();
                Some(start)
            })
            .collect();
        let speech: f64 = timelines.iter().map(SpeechTimeline::duration).sum();
        let parts = recognizer.transcribe_many(pieces, options, &|i, p| {
            progress(Progress {
                done: starts[i] + p.done,
                total: Some(speech),
            })
        });
        let mut joined: Option<Transcript> = None;
        for (timeline, part) in timelines.iter().zip(parts) {
            let mut part = part?;
            timeline.map_transcript(&mut part);
            match &mut joined {
                None => joined = Some(part),
                Some(all) => {
                    for mut segment in part.segments {
                        segment.id = all.segments.len();
                        all.segments.push(segment);
                    }
                    all.text.push_str(&part.text);
                    all.timings += &part.timings;
                }
            }
        }
        Ok(joined.expect("there is at least one piece"))
    }

    /// The stages a transcription goes through.
    pub fn stages(&self) -> &StagePlan {
        &self.plan
    }

    pub fn decode_options(&self) -> &DecodeOptions {
        &self.decode
    }

    /// The voice activity settings, when detection is on.
    pub fn vad_options(&self) -> Option<&VadOptions> {
        self.vad.as_ref()
    }

    fn recognizer_settings(&self) -> RecognizerSettings<'_> {
        RecognizerSettings {
            model: &self.model,
            quantize: self.quantize,
            decode: &self.decode,
            batching: self.batching,
        }
    }

    /// The model, for one caller at a time (a panicked holder does not
    /// poison it for the others: the model itself is never left half-changed).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Recognizer>> {
        self.recognizer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Pipeline>();
    }
}
