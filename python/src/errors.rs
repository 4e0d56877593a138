//! Errors as the Python package's exception classes (`mlx_asr/errors.py`),
//! their messages those the CLI prints: the error and its causes, joined
//! by ": ".

use asr_pipeline::PipelineError;
use pyo3::PyErr;

pyo3::import_exception!(mlx_asr.errors, Error);
pyo3::import_exception!(mlx_asr.errors, ConfigError);
pyo3::import_exception!(mlx_asr.errors, AudioError);
pyo3::import_exception!(mlx_asr.errors, ModelError);

/// A pipeline error, under `context` as the CLI words it (`loading model
/// tiny.en`, `transcribing a.wav`).
pub fn pipeline_error(error: PipelineError, context: String) -> PyErr {
    let new_err = match &error {
        PipelineError::Invalid(_) => ConfigError::new_err,
        PipelineError::Audio(_) => AudioError::new_err,
        PipelineError::Transcribe(_) | PipelineError::Mlx(_) if context.starts_with("loading") => {
            ModelError::new_err
        }
        _ => Error::new_err,
    };
    new_err(format!("{:#}", anyhow::Error::new(error).context(context)))
}

/// Settings that do not parse or check, in `pipeline check`'s words.
pub fn invalid(problems: Vec<String>) -> PyErr {
    ConfigError::new_err(PipelineError::Invalid(problems).to_string())
}
