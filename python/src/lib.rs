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
    log_when_asked();
    m.add_class::<pipeline::NativePipeline>()?;
    m.add_class::<pipeline::NativeTranscript>()?;
    m.add_class::<stream::NativeStream>()?;
    m.add_function(wrap_pyfunction!(pipeline::check, m)?)?;
    m.add_function(wrap_pyfunction!(convert::convert, m)?)?;
    m.add_function(wrap_pyfunction!(audio::decode_audio, m)?)?;
    m.add_function(wrap_pyfunction!(audio::load_audio, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The pipeline's `tracing` logs on standard error, filtered as
/// `MLX_ASR_LOG` says (`info`, `debug`, `mlx_asr=trace`), as the CLI does;
/// silent without it. Not when the embedding program has a subscriber.
fn log_when_asked() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("MLX_ASR_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
}
