//! `pipeline check`: a run config validated and its stages printed,
//! without reading audio or loading the model.

use std::path::{Path, PathBuf};

use anyhow::Result;
use asr_pipeline::plan::{resolve_quantize, StagePlan};
use asr_pipeline::{Config, QuantizeChoice};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The run's TOML configuration.
    config: PathBuf,
}

/// Prints the planned stages of a config, or fails with all its problems.
pub fn run(args: &CheckArgs) -> Result<()> {
    let path: &Path = &args.config;
    let config = Config::from_file(path)?;
    let plan = checked_plan(path, &config)?;
    print!("{plan}");
    if config.quantize == QuantizeChoice::Auto {
        let picked = resolve_quantize(config.quantize, &config.model);
        println!(
            "quantize = \"auto\": {picked} on this CPU (kernels at {})",
            mlx::kernels::active_isa()
        );
    }
    let files = config.input_files()?;
    println!("{}: ok, {} input file(s)", path.display(), files.len());
    Ok(())
}

/// The stages of a run config, or every problem with it (inputs, outputs,
/// model, device, decoding) in one error naming the file, found without
/// reading audio or loading the model.
pub fn checked_plan(path: &Path, config: &Config) -> Result<StagePlan> {
    StagePlan::of_config(config)
        .map_err(|problems| anyhow::anyhow!("{}: {}", path.display(), problems.join("; ")))
}
