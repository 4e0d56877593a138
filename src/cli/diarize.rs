//! `pipeline diarize`: who spoke when, without transcribing: speaker turns
//! of each input as RTTM on stdout, or as files in the chosen formats.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use asr_pipeline::config::output_stem;
use asr_pipeline::stages::audio::Recording;
use asr_pipeline::stages::diarize::{load_diarizer, DiarizationOptions};
use asr_pipeline::stages::output::{self, Format};
use asr_pipeline::{Config, Diarizer, Progress, Transcript};

use super::failed_files;
use super::progress::progress_bar;

#[derive(Copy, Clone, clap::ValueEnum)]
pub enum DiarizeFormat {
    Rttm,
    Json,
}

#[derive(clap::Args)]
pub struct DiarizeArgs {
    /// Audio files or directories of them (added to the config's `input`).
    inputs: Vec<PathBuf>,
    /// A run config whose `input`, `output_dir` and `[diarization]` table
    /// are used (flags override them).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write `<stem>.<format>` files here instead of printing RTTM.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Output format(s) of the files; rttm when not given.
    #[arg(long = "format", value_enum)]
    formats: Vec<DiarizeFormat>,
    /// Exactly this many speakers.
    #[arg(long)]
    num_speakers: Option<usize>,
    #[arg(long)]
    min_speakers: Option<usize>,
    #[arg(long)]
    max_speakers: Option<usize>,
    /// Clustering threshold (cosine distance; lower finds more speakers).
    #[arg(long)]
    threshold: Option<f32>,
    /// Seconds between segmentation chunks.
    #[arg(long)]
    step: Option<f64>,
}

/// The config file (or defaults) with the flags applied.
fn diarize_config(args: &DiarizeArgs) -> Result<(PathBuf, Config)> {
    let (path, mut config) = match &args.config {
        Some(path) => (path.clone(), Config::from_file(path)?),
        None => (
            PathBuf::from("command line"),
            Config::from_toml("formats = [\"rttm\"]\n[diarization]", Path::new("."))
                .map_err(anyhow::Error::msg)?,
        ),
    };
    config.inputs.extend(args.inputs.iter().cloned());
    if args.output_dir.is_some() {
        config.output_dir = args.output_dir.clone();
    }
    if !args.formats.is_empty() || args.config.is_none() {
        config.formats = args
            .formats
            .iter()
            .map(|f| match f {
                DiarizeFormat::Rttm => Format::Rttm,
                DiarizeFormat::Json => Format::Json,
            })
            .collect();
        if config.formats.is_empty() {
            config.formats.push(Format::Rttm);
        }
    }
    let opts = config
        .diarization
        .get_or_insert_with(DiarizationOptions::default);
    opts.num_speakers = args.num_speakers.or(opts.num_speakers);
    opts.min_speakers = args.min_speakers.or(opts.min_speakers);
    opts.max_speakers = args.max_speakers.or(opts.max_speakers);
    opts.threshold = args.threshold.unwrap_or(opts.threshold);
    opts.step_s = args.step.unwrap_or(opts.step_s);
    let mut problems = config.problems();
    if let Some(other) = config
        .formats
        .iter()
        .find(|f| !matches!(f, Format::Rttm | Format::Json))
    {
        problems.push(format!(
            "formats: diarization writes rttm and json, not {}",
            other.extension()
        ));
    }
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", path.display(), problems.join("; "));
    }
    Ok((path, config))
}

/// Diarizes every input; a failed file is reported and the others go on.
pub fn run(args: &DiarizeArgs, quiet: bool) -> Result<()> {
    let (path, config) = diarize_config(args)?;
    let opts = config.diarization.as_ref().expect("set by diarize_config");
    let files = config
        .input_files()
        .with_context(|| format!("{}: listing the input directories", path.display()))?;
    let diarizer = load_diarizer(opts).context("loading the diarization models")?;
    let mut failed = Vec::new();
    for file in &files {
        let done = diarize_file(&diarizer, file, quiet).and_then(|t| report(&config, &t, file));
        if let Err(e) = done {
            eprintln!("error: {e:#}");
            failed.push(file.display().to_string());
        }
    }
    failed_files(&failed, files.len())
}

/// The speaker turns of one file, with a progress bar over its seconds.
fn diarize_file(diarizer: &dyn Diarizer, file: &Path, quiet: bool) -> Result<Transcript> {
    let bar = progress_bar(quiet, "{msg} [{bar:30}] {pos}/{len} s diarized");
    bar.set_message(file.display().to_string());
    let recording = Recording::File(file);
    bar.set_length(recording.duration().map_or(0, |d| d.ceil() as u64));
    let started = std::time::Instant::now();
    let speakers = diarizer
        .diarize(recording, &|p: Progress| bar.set_position(p.done as u64))
        .with_context(|| format!("diarizing {}", file.display()))?;
    bar.finish_and_clear();
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        turns = speakers.len(),
        file = %file.display(),
        "diarized"
    );
    Ok(Transcript {
        speakers,
        ..Transcript::default()
    })
}

/// Prints RTTM, or writes the config's formats into its output directory.
fn report(config: &Config, transcript: &Transcript, file: &Path) -> Result<()> {
    let stem = output_stem(file);
    let Some(dir) = &config.output_dir else {
        print!(
            "{}",
            output::render_with(transcript, Format::Rttm, &config.subtitles, &stem)
        );
        return Ok(());
    };
    for &format in &config.formats {
        let path = output::write(transcript, format, &config.subtitles, dir, &stem).with_context(
            || {
                format!(
                    "writing {} output into {}",
                    format.extension(),
                    dir.display()
                )
            },
        )?;
        tracing::info!(path = %path.display(), "wrote");
    }
    Ok(())
}
