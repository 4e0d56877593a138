//! `pipeline check`: a run config validated and its stages printed,
//! without reading audio or loading the model.

use std::path::{Path, PathBuf};

use anyhow::Result;
use asr_pipeline::graph::{PlanSettings, StagePlan};
use asr_pipeline::Config;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The run's TOML configuration.
    config: PathBuf,
}

/// Prints the planned stages of a config, or fails with all its problems.
pub fn run(args: &CheckArgs) -> Result<()> {
    let path: &Path = &args.config;
    let config = Config::from_file(path)?;
    let problems = run_problems(&config);
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", path.display(), problems.join("; "));
    }
    let plan = StagePlan::new(&PlanSettings::of_config(&config))
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    print!("{plan}");
    let files = config.input_files()?;
    println!("{}: ok, {} input file(s)", path.display(), files.len());
    Ok(())
}

/// Everything wrong with a run config (inputs, outputs, model, device,
/// decoding), found without reading audio or loading the model.
pub fn run_problems(config: &Config) -> Vec<String> {
    let mut problems = config.problems();
    if let Err(more) = StagePlan::new(&PlanSettings::of_config(config)) {
        for p in more {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    problems
}
