//! Live transcription: audio arrives as it is spoken, and text comes back
//! as partial hypotheses that may still change and final words that never
//! do. [`agreement`] decides which words of a re-transcribed buffer are
//! final.

pub mod agreement;
pub mod source;
