//! The file boundary of a transcription: a panic anywhere below it (a
//! decoder, a kernel, a stage) becomes that file's error, so a batch, a
//! regression run or a server goes on with the other files.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Runs `work`; a panic becomes a bug-shaped error for `path`.
pub(crate) fn guard_file<T>(path: &Path, work: impl FnOnce() -> T) -> Result<T, InternalError> {
    catch_panic(work).map_err(|message| InternalError {
        path: path.display().to_string(),
        message,
    })
}

/// Runs `work`; a panic becomes its message.
///
/// Unwind safety: what `work` touches is either its own (decoders, streams)
/// or the model, which a panic never leaves half-changed.
pub(crate) fn catch_panic<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| panic_message(&*payload))
}

/// A panic while transcribing a file: a bug, reported as that file's error.
#[derive(Debug, thiserror::Error)]
#[error("internal error while transcribing {path}: {message} (a bug: please report it)")]
pub struct InternalError {
    pub path: String,
    pub message: String,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
