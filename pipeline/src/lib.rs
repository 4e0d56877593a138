//! The speech pipeline around the models: audio input now; the stage graph,
//! configuration and output writers build on it.

pub mod audio;
