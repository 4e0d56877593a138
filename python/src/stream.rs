//! A live stream: samples pushed as they arrive, events back.

use std::sync::Mutex;

use asr_pipeline::stream::{Stream, StreamEvent};
use asr_pipeline::PipelineError;
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use crate::errors::{pipeline_error, Error};

/// One pipeline's live stream; streams of a pipeline take turns on its
/// model.
#[pyclass(frozen, module = "mlx_asr._native")]
pub struct NativeStream {
    stream: Mutex<Option<Stream>>,
}

impl NativeStream {
    pub fn new(stream: Stream) -> NativeStream {
        NativeStream {
            stream: Mutex::new(Some(stream)),
        }
    }

    fn with_stream(
        &self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&mut Stream) -> Result<Vec<StreamEvent>, PipelineError> + Send,
        ends: bool,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let events = py.detach(|| {
            let mut slot = self.stream.lock().unwrap_or_else(|p| p.into_inner());
            let stream = slot
                .as_mut()
                .ok_or_else(|| Error::new_err(format!("{what}: the stream has finished")))?;
            let events = f(stream).map_err(|e| pipeline_error(e, format!("{what} a stream")));
            if ends {
                *slot = None;
            }
            events
        })?;
        events
            .iter()
            .map(|event| Ok(pythonize::pythonize(py, event)?.unbind()))
            .collect()
    }
}

#[pymethods]
impl NativeStream {
    /// Appends 16 kHz mono samples; the events they brought about.
    fn push(&self, py: Python<'_>, samples: PyReadonlyArray1<'_, f32>) -> PyResult<Vec<Py<PyAny>>> {
        let samples = samples.as_array().to_vec();
        self.with_stream(py, "pushing to", |s| s.push(&samples), false)
    }

    /// Ends the stream: everything heard becomes final.
    fn finish(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.with_stream(py, "finishing", Stream::finish, true)
    }

    /// Seconds pushed so far.
    #[getter]
    fn seconds(&self) -> f64 {
        let slot = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map_or(0.0, Stream::seconds)
    }
}
