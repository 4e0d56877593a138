//! One module per `pipeline` subcommand, plus the pieces they share.

pub mod check;
pub mod convert;
pub mod diarize;
pub mod fetch;
pub mod info;
pub mod regress;
pub mod run;

mod progress;
