//! What `transcribe` accepts as a recording: a path, or 16 kHz mono samples
//! (the Python half turns other arrays and file objects into those).

use std::path::{Path, PathBuf};

use asr_pipeline::stages::audio::{load_audio as load, AudioStream, Recording};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::AudioError;

/// A recording held by the native side, so that the GIL can be released
/// while it is transcribed.
pub enum Audio {
    File(PathBuf),
    Samples(Vec<f32>),
}

impl Audio {
    pub fn extract(audio: &Bound<'_, PyAny>) -> PyResult<Audio> {
        if let Ok(samples) = audio.extract::<PyReadonlyArray1<'_, f32>>() {
            return Ok(Audio::Samples(samples.as_array().to_vec()));
        }
        audio.extract::<PathBuf>().map(Audio::File).map_err(|_| {
            PyTypeError::new_err(format!(
                "audio: a path or a 1-D float32 array of 16 kHz samples is expected, not {}",
                audio
                    .get_type()
                    .name()
                    .map_or_else(|_| "this".into(), |n| n.to_string())
            ))
        })
    }

    pub fn recording(&self) -> Recording<'_> {
        match self {
            Audio::File(path) => Recording::File(path),
            Audio::Samples(samples) => Recording::Samples(samples),
        }
    }

    /// How the CLI names the work in its errors: `transcribing a.wav`.
    pub fn context(&self) -> String {
        format!("transcribing {}", self.recording().name().display())
    }
}

/// Decodes an encoded recording (WAV, FLAC, MP3, …) held in memory into
/// 16 kHz mono samples; `name` names it in errors.
#[pyfunction]
pub fn decode_audio<'py>(
    py: Python<'py>,
    name: PathBuf,
    data: Vec<u8>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let samples = py
        .detach(|| {
            let blocks = AudioStream::from_bytes(Path::new(&name), data)?;
            blocks.collect::<Result<Vec<Vec<f32>>, _>>()
        })
        .map_err(|e| AudioError::new_err(e.to_string()))?;
    Ok(PyArray1::from_vec(py, samples.concat()))
}

/// Decodes an audio file into 16 kHz mono samples.
#[pyfunction]
pub fn load_audio(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyArray1<f32>>> {
    let samples = py
        .detach(|| load(&path))
        .map_err(|e| AudioError::new_err(e.to_string()))?;
    Ok(PyArray1::from_vec(py, samples))
}
