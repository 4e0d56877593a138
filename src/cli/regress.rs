//! `pipeline regress`: the audio set of a manifest against its stored
//! snapshots (the logic is `asr_pipeline::regress`; this prints).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use asr_pipeline::regress::{self, Event, ItemReport, Manifest, Report, RunOptions, Status};
use asr_pipeline::wer::WordErrors;

use super::progress::progress_bar;

#[derive(clap::Args)]
pub struct RegressArgs {
    /// The regression manifest (see README: Regression runs).
    manifest: PathBuf,
    /// Write the snapshots of new and changed items (exit status 0 unless an item failed).
    #[arg(long)]
    accept: bool,
}

fn wer(e: Option<WordErrors>) -> String {
    match e {
        Some(e) => format!(
            "{:.2}% ({}/{})",
            100.0 * e.rate(),
            e.errors,
            e.reference_words
        ),
        None => "-".into(),
    }
}

fn item_lines(r: &ItemReport, id_width: usize) -> String {
    let mut out = format!("{:<8} {:<id_width$}", r.status.to_string(), r.id);
    if r.status != Status::Failed {
        let _ = write!(
            out,
            "  vs snapshot {:<16} vs reference {:<16} {:.1} s",
            wer(r.vs_snapshot),
            wer(r.vs_reference),
            r.seconds
        );
    }
    if r.written {
        out += "  (snapshot written)";
    }
    out.push('\n');
    if let Some(error) = &r.error {
        let _ = writeln!(out, "    error: {error}");
    }
    if let Some(words) = &r.word_diff {
        let _ = writeln!(out, "    words: {words}");
    }
    if let Some(diff) = &r.line_diff {
        for line in diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

fn summary(report: &Report) -> String {
    let mut out = format!(
        "\n{:>5} {:>5} {:>7} {:>5} {:>6}  {:<22} WER vs references\n",
        "items", "same", "changed", "new", "failed", "WER vs snapshots"
    );
    let _ = writeln!(
        out,
        "{:>5} {:>5} {:>7} {:>5} {:>6}  {:<22} {} (references for {} of {} items)",
        report.items.len(),
        report.count(Status::Same),
        report.count(Status::Changed),
        report.count(Status::New),
        report.count(Status::Failed),
        wer(report
            .items
            .iter()
            .any(|i| i.vs_snapshot.is_some())
            .then(|| report.vs_snapshots())),
        wer((report.referenced_items() > 0).then(|| report.vs_references())),
        report.referenced_items(),
        report.items.len()
    );
    if !report.unreferenced.is_empty() {
        let names: Vec<String> = report
            .unreferenced
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let _ = writeln!(out, "note: no item names {}", names.join(", "));
    }
    out
}

/// Checks every item of the manifest, a line each, then the summary; an
/// error when any item needs attention.
pub fn run(args: RegressArgs, quiet: bool) -> Result<()> {
    let manifest = Manifest::from_file(&args.manifest)?;
    let id_width = manifest.items.iter().map(|i| i.id.len()).max().unwrap_or(0);
    let bar = progress_bar(quiet, "{msg} [{bar:30}] {pos}/{len} items");
    bar.set_length(manifest.items.len() as u64);
    let on_event = |event: Event<'_>| match event {
        Event::Started { item, .. } => bar.set_message(item.id.clone()),
        Event::Audio { .. } => {}
        Event::Finished { report, .. } => {
            bar.suspend(|| print!("{}", item_lines(report, id_width)));
            bar.inc(1);
        }
    };
    let options = RunOptions {
        accept: args.accept,
    };
    let report = regress::run_pipeline(&manifest, &options, &on_event)
        .with_context(|| format!("loading model {}", manifest.config.model))?;
    bar.finish_and_clear();
    print!("{}", summary(&report));
    if report.passed() {
        return Ok(());
    }
    let failed = report.count(Status::Failed);
    if args.accept {
        anyhow::bail!(
            "{} of {} items failed",
            report.items.iter().filter(|i| !i.is_ok()).count(),
            report.items.len()
        );
    }
    anyhow::bail!(
        "{} changed, {} new, {failed} failed of {} items (`pipeline regress --accept {}` writes the new snapshots)",
        report.count(Status::Changed),
        report.count(Status::New),
        report.items.len(),
        args.manifest.display()
    )
}
