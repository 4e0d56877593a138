//! One module per `pipeline` subcommand, plus the pieces they share.

pub mod check;
pub mod convert;
pub mod diarize;
pub mod fetch;
pub mod info;
pub mod regress;
pub mod run;
pub mod serve;
pub mod stream;

mod progress;

/// Fails naming the files that failed (each already reported), if any.
fn failed_files(failed: &[String], total: usize) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{} of {} files failed: {}",
        failed.len(),
        total,
        failed.join(", ")
    )
}
