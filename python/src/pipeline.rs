//! `Pipeline` and `Transcript` as the Python half sees them.

use std::path::PathBuf;
use std::sync::Arc;

use asr_pipeline::plan::StagePlan;
use asr_pipeline::stages::output::{render_with, Format, SubtitleOptions};
use asr_pipeline::stream::StreamOptions;
use asr_pipeline::{Config, DecodeOptions, Pipeline, PipelineError, Transcript};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use toml::Table;

use crate::audio::Audio;
use crate::errors::{invalid, load_error, notify, pipeline_error};
use crate::settings::{self, subtable, with_overrides};
use crate::stream::NativeStream;

/// A loaded pipeline (model, voice activity detection, aligner, diarizer),
/// shared by any number of Python threads.
#[pyclass(frozen, module = "mlx_asr._native")]
pub struct NativePipeline {
    pipeline: Arc<Pipeline>,
    /// The configuration's TOML, under which per-call options are laid.
    table: Table,
    subtitles: SubtitleOptions,
}

#[pymethods]
impl NativePipeline {
    #[new]
    #[pyo3(signature = (config=None, settings=None))]
    fn new(
        py: Python<'_>,
        config: Option<PathBuf>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<NativePipeline> {
        let (config, table) = settings::config(config.as_deref(), settings)?;
        let Config {
            ref model,
            ref subtitles,
            ..
        } = config;
        let pipeline = py
            .detach(|| Pipeline::from_config(&config))
            .map_err(|e| load_error(e, model))?;
        Ok(NativePipeline {
            pipeline: Arc::new(pipeline),
            table,
            subtitles: subtitles.clone(),
        })
    }

    /// Transcribes one recording with the `[decode]` settings laid over
    /// the pipeline's; `progress(done, total)` hears of the seconds done.
    #[pyo3(signature = (audio, decode=None, progress=None))]
    fn transcribe(
        &self,
        py: Python<'_>,
        audio: &Bound<'_, PyAny>,
        decode: Option<&Bound<'_, PyDict>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<NativeTranscript> {
        let options = self.decode_options(decode)?;
        let audio = Audio::extract(audio)?;
        let mut result = py.detach(|| {
            self.pipeline
                .transcribe_many(&[audio.recording()], &options, &|_, p| {
                    notify(progress.as_ref(), (p.done, p.total))
                })
        });
        let transcript = result.pop().expect("one result per recording");
        self.transcript(transcript, &audio)
    }

    /// Transcribes several recordings, decoded side by side up to
    /// `batch_size`; a recording that fails has its exception in its place.
    #[pyo3(signature = (audios, decode=None, progress=None))]
    fn transcribe_batch(
        &self,
        py: Python<'_>,
        audios: Vec<Bound<'_, PyAny>>,
        decode: Option<&Bound<'_, PyDict>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let options = self.decode_options(decode)?;
        let audios: Vec<Audio> = audios.iter().map(Audio::extract).collect::<PyResult<_>>()?;
        let results = py.detach(|| {
            let recordings: Vec<_> = audios.iter().map(Audio::recording).collect();
            self.pipeline
                .transcribe_many(&recordings, &options, &|i, p| {
                    notify(progress.as_ref(), (i, p.done, p.total))
                })
        });
        results
            .into_iter()
            .zip(&audios)
            .map(|(result, audio)| match self.transcript(result, audio) {
                Ok(transcript) => Ok(Py::new(py, transcript)?.into_any()),
                Err(e) => Ok(e.into_value(py).into_any()),
            })
            .collect()
    }

    /// A live stream with the `[stream]` settings laid over the pipeline's.
    #[pyo3(signature = (options=None))]
    fn stream(&self, options: Option<&Bound<'_, PyDict>>) -> PyResult<NativeStream> {
        let options: StreamOptions =
            with_overrides(&subtable(&self.table, "stream"), options, "stream")?;
        let stream = self
            .pipeline
            .stream(options)
            .map_err(|e| pipeline_error(e, "starting a stream".into()))?;
        Ok(NativeStream::new(stream))
    }

    /// The stages a transcription goes through, by name.
    fn stages(&self) -> Vec<&'static str> {
        stage_names(self.pipeline.stages())
    }

    /// Checks `[decode]` settings laid over the pipeline's, as `transcribe`
    /// would.
    #[pyo3(signature = (decode=None))]
    fn check_decode(&self, decode: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.decode_options(decode).map(drop)
    }
}

/// The stages a pipeline of these settings would run, by name, found
/// without loading (or fetching) any model; a `ConfigError` names every
/// problem, under the settings' origin.
#[pyfunction]
#[pyo3(signature = (config=None, settings=None))]
pub fn check(
    config: Option<PathBuf>,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<Vec<&'static str>> {
    let origin = settings::origin(config.as_deref(), settings);
    let (config, _) = settings::config(config.as_deref(), settings)?;
    let plan = Pipeline::plan(&config).map_err(|e| pipeline_error(e, origin))?;
    Ok(stage_names(&plan))
}

fn stage_names(plan: &StagePlan) -> Vec<&'static str> {
    plan.stages.iter().map(|s| s.name).collect()
}

impl NativePipeline {
    fn decode_options(&self, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<DecodeOptions> {
        let options: DecodeOptions =
            with_overrides(&subtable(&self.table, "decode"), overrides, "decode")?;
        let problems = self.pipeline.check_decode(&options);
        if problems.is_empty() {
            Ok(options)
        } else {
            Err(invalid(problems))
        }
    }

    fn transcript(
        &self,
        result: Result<Transcript, PipelineError>,
        audio: &Audio,
    ) -> PyResult<NativeTranscript> {
        let transcript = result.map_err(|e| pipeline_error(e, audio.context()))?;
        Ok(NativeTranscript {
            transcript,
            subtitles: self.subtitles.clone(),
            name: match audio {
                Audio::File(path) => asr_pipeline::config::output_stem(path),
                Audio::Samples(_) => "samples".into(),
            },
        })
    }
}

/// One recording's transcript, rendered on demand in the CLI's formats.
#[pyclass(frozen, module = "mlx_asr._native")]
pub struct NativeTranscript {
    transcript: Transcript,
    subtitles: SubtitleOptions,
    /// The recording's name in RTTM lines: the file's stem.
    name: String,
}

#[pymethods]
impl NativeTranscript {
    /// The CLI's output file in `format` (txt, json, srt, vtt, tsv, rttm).
    fn render(&self, format: &str) -> PyResult<String> {
        let format: Format = toml::Value::String(format.into()).try_into().map_err(|_| {
            PyValueError::new_err(format!(
                "format {format:?}: one of txt, json, srt, vtt, tsv, rttm"
            ))
        })?;
        Ok(render_with(
            &self.transcript,
            format,
            &self.subtitles,
            &self.name,
        ))
    }

    /// Seconds of audio transcribed.
    #[getter]
    fn duration(&self) -> f64 {
        self.transcript.timings.audio
    }
}
