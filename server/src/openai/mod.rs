//! OpenAI's audio API as its clients see it: the request form, the answer
//! shapes and the error body.

pub mod error;
pub mod form;
pub mod response;

pub use error::ApiError;
pub use form::{Endpoint, ResponseFormat, TranscriptionForm, Upload};
pub use response::Answer;
