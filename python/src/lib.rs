//! The native half of the `mlx_asr` Python package: a loaded
//! [`asr_pipeline::Pipeline`], its transcripts and live streams, and the
//! converter, with the GIL released while the model works so that Python
//! threads can share one pipeline. The Python half (`mlx_asr/`) turns
//! results into dataclasses; errors are raised as its exception classes
//! with the CLI's messages.

use pyo3::prelude::*;

mod audio;
mod convert;
mod errors;
mod pipeline;
mod settings;
mod stream;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<pipeline::NativePipeline>()?;
    m.add_class::<pipeline::NativeTranscript>()?;
    m.add_class::<stream::NativeStream>()?;
    m.add_function(wrap_pyfunction!(convert::convert, m)?)?;
    m.add_function(wrap_pyfunction!(audio::decode_audio, m)?)?;
    m.add_function(wrap_pyfunction!(audio::load_audio, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
