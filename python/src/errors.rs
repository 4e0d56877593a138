//! Errors as the Python package's exception classes (`mlx_asr/errors.py`),
//! their messages those the CLI prints: the error and its causes, joined
//! by ": ".

use asr_pipeline::PipelineError;
use pyo3::call::PyCallArgs;
use pyo3::prelude::*;

pyo3::import_exception!(mlx_asr.errors, Error);
pyo3::import_exception!(mlx_asr.errors, ConfigError);
pyo3::import_exception!(mlx_asr.errors, AudioError);
pyo3::import_exception!(mlx_asr.errors, ModelError);

/// A pipeline error, under `context` as the CLI words it (`transcribing
/// a.wav`).
pub fn pipeline_error(error: PipelineError, context: String) -> PyErr {
    let new_err = match &error {
        PipelineError::Invalid(_) => ConfigError::new_err,
        PipelineError::Audio(_) => AudioError::new_err,
        _ => Error::new_err,
    };
    new_err(message(error, context))
}

/// A pipeline that could not be built: its settings, or its model.
pub fn load_error(error: PipelineError, model: &str) -> PyErr {
    let context = format!("loading model {model}");
    match error {
        PipelineError::Invalid(_) => pipeline_error(error, context),
        _ => ModelError::new_err(message(error, context)),
    }
}

fn message(error: PipelineError, context: String) -> String {
    format!("{:#}", anyhow::Error::new(error).context(context))
}

/// Calls a Python progress callback; an exception it raises is reported
/// as unraisable (the work goes on).
pub fn notify<A: for<'py> PyCallArgs<'py>>(callback: Option<&Py<PyAny>>, args: A) {
    if let Some(callback) = callback {
        Python::attach(|py| {
            if let Err(e) = callback.call1(py, args) {
                e.write_unraisable(py, Some(callback.bind(py)));
            }
        });
    }
}

/// Settings that do not parse or check, in `pipeline check`'s words.
pub fn invalid(problems: Vec<String>) -> PyErr {
    ConfigError::new_err(PipelineError::Invalid(problems).to_string())
}
