//! `pipeline fetch`: a registry model downloaded into the cache.

use anyhow::Result;

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Registry model: tiny.en (English) or base (multilingual).
    name: String,
}

/// Prints the folder the model was fetched into.
pub fn run(args: &FetchArgs) -> Result<()> {
    println!("{}", asr_converters::registry::fetch(&args.name)?.display());
    Ok(())
}
