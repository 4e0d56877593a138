//! `pipeline run`: the audio files of a config transcribed, printed and
//! written in the config's output formats.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use asr_pipeline::config::output_stem;
use asr_pipeline::stages::output;
use asr_pipeline::{Config, Pipeline, PipelineError, Progress, Transcript};

use super::failed_files;
use super::progress::progress_bar;
use overrides::{run_config, DeviceArg, FormatArg, TaskArg};
use profile::profile_table;
use resume::outputs_complete;

mod overrides;
mod profile;
mod resume;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The run's TOML configuration (see README: Configuration).
    config: PathBuf,
    /// Audio file(s) or directories to transcribe instead of the config's `input`.
    #[arg(long)]
    input: Vec<PathBuf>,
    /// Directory for output files instead of the config's `output_dir`.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Output format(s) instead of the config's `formats`.
    #[arg(long = "format", value_enum)]
    formats: Vec<FormatArg>,
    /// Model instead of the config's `model`: registry name, Hugging Face repo
    /// (org/name[@rev]), MLX folder or checkpoint path.
    #[arg(long)]
    model: Option<String>,
    /// Device instead of the config's `device`.
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
    /// Spoken language code instead of `decode.language` (multilingual models).
    #[arg(long)]
    language: Option<String>,
    /// Task instead of `decode.task`.
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// Transcribe files again even when all their outputs exist.
    #[arg(long)]
    force: bool,
    /// Print where the time went, per stage, after each file (stderr).
    #[arg(long)]
    profile: bool,
}

/// Transcribes every input file not yet done, in groups of the batch size;
/// a failed file is reported and the others go on.
pub fn run(args: RunArgs, quiet: bool) -> Result<()> {
    let config = run_config(&args)?;
    let files = config
        .input_files()
        .with_context(|| format!("{}: listing the input directories", args.config.display()))?;
    let started = std::time::Instant::now();
    let pipeline = Pipeline::from_config(&config)
        .with_context(|| format!("loading model {}", config.model))?;
    // scripts/bench-peers reads these two timings from `-v` output.
    tracing::info!(secs = started.elapsed().as_secs_f64(), "model loaded");
    // Only after loading: asked before, the weights come from the kept heap
    // as well, which made decoding slower.
    if !mlx::keep_freed_memory() {
        tracing::debug!("freed memory goes back to the OS as the C library decides");
    }
    let pending: Vec<&Path> = files
        .iter()
        .map(PathBuf::as_path)
        .filter(|input| {
            let done = !args.force && outputs_complete(&config, &output_stem(input));
            if done {
                tracing::warn!(input = %input.display(), "skipped: its outputs exist (--force redoes it)");
            }
            !done
        })
        .collect();
    let mut failed = Vec::new();
    for group in pending.chunks(config.decode.batch_size.max(1)) {
        let transcripts = transcribe_group(&pipeline, group, quiet);
        for (input, transcript) in group.iter().zip(transcripts) {
            let reported = transcript
                .with_context(|| format!("transcribing {}", input.display()))
                .and_then(|t| report(&config, &t, &output_stem(input), args.profile));
            if let Err(e) = reported {
                eprintln!("error: {e:#}");
                failed.push(input.display().to_string());
            }
        }
    }
    failed_files(&failed, files.len())
}

/// Transcribes `group` together (see `Pipeline::transcribe_files`), one
/// progress bar over the seconds of all of its files.
fn transcribe_group(
    pipeline: &Pipeline,
    group: &[&Path],
    quiet: bool,
) -> Vec<Result<Transcript, PipelineError>> {
    let bar = progress_bar(quiet, "{msg} [{bar:30}] {pos}/{len} s of audio");
    bar.set_message(match group {
        [one] => one.display().to_string(),
        _ => format!("{} files", group.len()),
    });
    let seen = std::cell::RefCell::new(vec![(0.0, 0.0); group.len()]);
    let progress = |i: usize, p: Progress| {
        let mut seen = seen.borrow_mut();
        seen[i] = (p.done, p.total.unwrap_or(p.done));
        let (done, total) = seen.iter().fold((0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1));
        bar.set_length(f64::ceil(total) as u64);
        bar.set_position(f64::floor(done) as u64);
    };
    let started = std::time::Instant::now();
    let transcripts = pipeline.transcribe_files(group, &progress);
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        files = group.len(),
        "transcribed"
    );
    bar.finish_and_clear();
    transcripts
}

/// Prints the transcript (and its profile) and writes its output files.
fn report(config: &Config, transcript: &Transcript, stem: &str, profile: bool) -> Result<()> {
    println!("{}", transcript.text.trim());
    if profile {
        eprint!("{}", profile_table(&transcript.timings));
    }
    if let Some(dir) = &config.output_dir {
        for &format in &config.formats {
            let subtitles = &config.subtitles;
            let path =
                output::write(transcript, format, subtitles, dir, stem).with_context(|| {
                    format!(
                        "writing {} output into {}",
                        format.extension(),
                        dir.display()
                    )
                })?;
            tracing::info!(path = %path.display(), "wrote");
        }
    }
    Ok(())
}
