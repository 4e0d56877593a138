//! `convert(...)`: `pipeline convert` from Python.

use std::path::PathBuf;

use asr_converters::convert::{convert as convert_checkpoint, ConvertRequest};
use asr_pipeline::{Quantization, Quantize};
use pyo3::prelude::*;

use crate::errors::{notify, ConfigError, ModelError};

/// Converts a checkpoint into an MLX model folder, as `pipeline convert`
/// does; returns what was written.
#[pyfunction]
#[pyo3(signature = (source, out, family="whisper", dtype=None, quantize=None, group_size=Quantization::DEFAULT_GROUP_SIZE, force=false, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn convert(
    py: Python<'_>,
    source: PathBuf,
    out: PathBuf,
    family: &str,
    dtype: Option<&str>,
    quantize: Option<&str>,
    group_size: i32,
    force: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let request = ConvertRequest {
        dtype: dtype
            .map(str::parse)
            .transpose()
            .map_err(ConfigError::new_err)?,
        quantize: quantize
            .map(str::parse::<Quantize>)
            .transpose()
            .map_err(|e| ConfigError::new_err(e.to_string()))?,
        group_size,
        force,
        ..ConvertRequest::new(&source, &out, family.parse().map_err(ConfigError::new_err)?)
    };
    py.detach(|| {
        convert_checkpoint(&request, &|done, total| {
            notify(progress.as_ref(), (done, total))
        })
    })
    .map_err(|e| ModelError::new_err(e.to_string()))
}
