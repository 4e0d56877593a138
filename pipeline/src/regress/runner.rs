//! A regression run: every item transcribed, compared with its snapshot
//! and, with `accept`, its snapshot written.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use super::diff::{line_diff, word_diff};
use super::manifest::{Item, Manifest};
use super::report::{ItemReport, Report, Status};
use super::snapshot::render_snapshot;
use super::snapshot_file::SnapshotFile;
use crate::panic_guard::guard_file;
use crate::transcript::{Progress, Transcript};
use crate::wer::word_errors;
use crate::{Pipeline, PipelineError};
use asr_converters::atomic::write_atomically;

/// What a run reports while it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Item `index` of `total` starts.
    Started {
        index: usize,
        total: usize,
        item: &'a Item,
    },
    /// Seconds of the current item's audio transcribed.
    Audio { index: usize, progress: Progress },
    /// Item `index` is done.
    Finished {
        index: usize,
        total: usize,
        report: &'a ItemReport,
    },
}

/// Transcribes an item's audio, reporting seconds done through the
/// callback; an error is a message for the report.
pub type TranscribeItem<'a> =
    dyn FnMut(&Item, &dyn Fn(Progress)) -> Result<Transcript, String> + 'a;

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Write new and changed snapshots.
    pub accept: bool,
}

/// Transcribes every item with `transcribe` (which reports audio progress
/// through its second argument) and compares it with its snapshot. A
/// failing item (a panicking one too) is reported and the run goes on.
pub fn run(
    manifest: &Manifest,
    options: &RunOptions,
    transcribe: &mut TranscribeItem<'_>,
    on_event: &dyn Fn(Event<'_>),
) -> Report {
    let total = manifest.items.len();
    let mut items = Vec::with_capacity(total);
    for (index, item) in manifest.items.iter().enumerate() {
        on_event(Event::Started { index, total, item });
        let progress = |progress: Progress| on_event(Event::Audio { index, progress });
        let report = check_item(manifest, item, options, transcribe, &progress);
        on_event(Event::Finished {
            index,
            total,
            report: &report,
        });
        items.push(report);
    }
    Report {
        unreferenced: unreferenced(manifest),
        items,
        accepted: options.accept,
    }
}

/// [`run`] with the manifest's model, loaded once.
pub fn run_pipeline(
    manifest: &Manifest,
    options: &RunOptions,
    on_event: &dyn Fn(Event<'_>),
) -> Result<Report, PipelineError> {
    let pipeline = Pipeline::from_config(&manifest.config)?;
    let mut transcribe = |item: &Item, progress: &dyn Fn(Progress)| {
        pipeline
            .transcribe_file_with_progress(&item.path, progress)
            .map_err(|e| error_chain(&e))
    };
    Ok(run(manifest, options, &mut transcribe, on_event))
}

/// An error and its causes, `: `-separated, each said once.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out += &format!(": {text}");
        }
        source = cause.source();
    }
    out
}

fn check_item(
    manifest: &Manifest,
    item: &Item,
    options: &RunOptions,
    transcribe: &mut TranscribeItem<'_>,
    progress: &dyn Fn(Progress),
) -> ItemReport {
    let started = Instant::now();
    let snapshot_path = manifest.snapshot_path(item);
    let mut report = ItemReport {
        id: item.id.clone(),
        audio: item.path.clone(),
        snapshot: snapshot_path.clone(),
        status: Status::Failed,
        error: None,
        transcript: None,
        stored_text: None,
        vs_snapshot: None,
        vs_reference: None,
        word_diff: None,
        line_diff: None,
        written: false,
        seconds: 0.0,
    };
    let stored = match std::fs::read_to_string(&snapshot_path) {
        Ok(text) => Some(SnapshotFile::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            report.error = Some(format!("reading {}: {e}", snapshot_path.display()));
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    report.stored_text = stored.as_ref().and_then(SnapshotFile::text);
    let transcript = if item.path.is_file() {
        guard_file(&item.path, || transcribe(item, progress)).unwrap_or_else(|e| Err(e.to_string()))
    } else {
        Err(format!("no such audio file: {}", item.path.display()))
    };
    let transcript = match transcript {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(e);
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    let body = render_snapshot(&transcript);
    let text = transcript.text.as_str();
    report.vs_reference = item.reference.as_deref().map(|r| word_errors(r, text));
    report.vs_snapshot = report.stored_text.as_deref().map(|s| word_errors(s, text));
    report.status = match &stored {
        None => Status::New,
        Some(s) if s.body == body.trim_end() => Status::Same,
        Some(s) => {
            report.word_diff = Some(word_diff(report.stored_text.as_deref().unwrap_or(""), text));
            report.line_diff = Some(line_diff(
                &s.body,
                &body,
                &snapshot_path.display().to_string(),
            ));
            Status::Changed
        }
    };
    if options.accept && matches!(report.status, Status::New | Status::Changed) {
        let file = SnapshotFile {
            source: Some(manifest.source.clone()),
            expression: Some("transcript".into()),
            input_file: Some(item.input.clone()),
            body,
        };
        match write_atomically(&snapshot_path, file.to_text()) {
            Ok(()) => report.written = true,
            Err(e) => report.error = Some(format!("writing {}: {e}", snapshot_path.display())),
        }
    }
    report.transcript = Some(transcript);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// `.snap` files in the snapshot folder that no item names, in name order
/// (none when the folder cannot be read).
fn unreferenced(manifest: &Manifest) -> Vec<PathBuf> {
    let ids: HashSet<&str> = manifest.items.iter().map(|i| i.id.as_str()).collect();
    let mut stale: Vec<PathBuf> = std::fs::read_dir(&manifest.snapshot_dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "snap")
                && p.file_stem()
                    .is_some_and(|s| !ids.contains(s.to_string_lossy().as_ref()))
        })
        .collect();
    stale.sort();
    stale
}
