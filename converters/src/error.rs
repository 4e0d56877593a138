use std::path::{Path, PathBuf};

use crate::whisper::{MappingError, WriteError};

/// Everything that can go wrong reading or converting a checkpoint. Each
/// variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Mapping { path: PathBuf, error: MappingError },
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl ConvertError {
    pub fn format(path: &Path, message: impl Into<String>) -> ConvertError {
        ConvertError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An MLX operation on tensor (or file) `name` that failed.
    pub fn mlx(name: &str, error: mlx::Error) -> ConvertError {
        WriteError::Mlx {
            name: name.to_string(),
            error,
        }
        .into()
    }

    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
        move |error| ConvertError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

pub type Result<T> = std::result::Result<T, ConvertError>;
