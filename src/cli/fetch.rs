//! `pipeline fetch`: a registry model, or a registry asset (the weights of
//! a voice-activity or speaker model), downloaded into the cache.

use anyhow::Result;

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Registry model: tiny.en (English) or base (multilingual); or an
    /// asset: silero-vad, pyannote-segmentation, resemblyzer.
    name: String,
}

/// Prints the folder the model was fetched into, or the asset's file.
pub fn run(args: &FetchArgs) -> Result<()> {
    use asr_converters::registry;
    let path = if registry::is_asset(&args.name) {
        registry::fetch_asset(&args.name)?
    } else {
        registry::fetch(&args.name)?
    };
    println!("{}", path.display());
    Ok(())
}
