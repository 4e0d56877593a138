use crate::Dtype;

/// Errors from the MLX bindings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An exception thrown by MLX, with its message.
    #[error("MLX: {0}")]
    Mlx(String),
    /// Data read back or supplied with a type other than the array's dtype.
    #[error("dtype mismatch: array is {array:?}, requested {requested:?}")]
    DtypeMismatch { array: Dtype, requested: Dtype },
    /// A file operation failed; names the file.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A Rust closure passed to `compile` failed or panicked.
    #[error("compiled function: {0}")]
    Callback(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<cxx::Exception> for Error {
    fn from(e: cxx::Exception) -> Self {
        Error::Mlx(e.what().to_string())
    }
}
