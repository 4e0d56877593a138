//! Regression runs: a manifest names a set of audio files and the settings
//! to transcribe them with; every transcript is rendered as a stable JSON
//! snapshot (probabilities redacted, times rounded to milliseconds) in an
//! insta-compatible `.snap` file and compared with the stored one.
//!
//! [`Manifest::from_file`] reads and validates a manifest, [`run`] checks
//! every item with any transcriber (tests pass a fake one) and
//! [`run_pipeline`] with the manifest's model. Both return a [`Report`];
//! nothing is printed here: progress and per-item results go to the
//! caller's callback as [`Event`]s.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use asr_converters::atomic::write_atomically;
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use crate::config::decode::DecodeOptions;
use crate::config::{is_audio, Config, DeviceName};
use crate::transcript::Progress;
use crate::transcript::Transcript;
use crate::wer::{word_errors, WordErrors};
use crate::{Pipeline, PipelineError};

/// One audio file of a regression set.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Names the snapshot: `<snapshot_dir>/<id>.snap`.
    pub id: String,
    /// The audio file (it may be missing: the item then fails).
    pub path: PathBuf,
    /// The path as the snapshot header shows it: relative to the manifest's
    /// folder, `/`-separated.
    pub input: String,
    /// A human transcript to compute the word error rate against.
    pub reference: Option<String>,
}

/// A validated regression manifest; paths are resolved against its folder.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Model, device and `[decode]` settings, as `pipeline run` reads them
    /// (the config's inputs and outputs are not used).
    pub config: Config,
    /// Where `<id>.snap` files live.
    pub snapshot_dir: PathBuf,
    pub items: Vec<Item>,
    /// The manifest's file name, written as the snapshots' `source`.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    /// A `pipeline run` config whose model, device and `[decode]` are used.
    config: Option<PathBuf>,
    /// Or the same settings inline.
    model: Option<String>,
    device: Option<DeviceName>,
    decode: Option<DecodeOptions>,
    snapshots: Option<PathBuf>,
    /// `[[audio]]` tables, a list of paths/globs/folders, or one of them.
    audio: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: Option<String>,
    path: String,
    reference: Option<String>,
}

impl Manifest {
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|error| ManifestError::Read {
            path: path.into(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Manifest::from_toml(&text, base, &source).map_err(|problems| ManifestError::Invalid {
            path: path.into(),
            problems,
        })
    }

    /// Parses a manifest; relative paths are taken relative to `base`.
    /// `source` names the manifest in the snapshot headers. Every problem
    /// found is returned at once.
    pub fn from_toml(text: &str, base: &Path, source: &str) -> Result<Manifest, Vec<String>> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_string()])?;
        let mut problems = Vec::new();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let inline = raw.model.is_some() || raw.device.is_some() || raw.decode.is_some();
        let config = match raw.config {
            Some(_) if inline => {
                problems.push(
                    "config: give either a config file or inline model/device/[decode] settings, not both"
                        .into(),
                );
                None
            }
            Some(file) => match Config::from_file(&resolve(&file)) {
                Ok(config) => Some(config),
                Err(e) => {
                    problems.push(format!("config: {e}"));
                    None
                }
            },
            None => {
                // The same defaults and model resolution as `pipeline run`.
                let mut config = Config::from_toml("", base).expect("an empty config is valid");
                if let Some(model) = raw.model {
                    config.model = if base.join(&model).exists() {
                        base.join(&model).display().to_string()
                    } else {
                        model
                    };
                }
                config.device = raw.device.unwrap_or_default();
                config.decode = raw.decode.unwrap_or_default();
                Some(config)
            }
        };
        if let Some(config) = &config {
            problems.extend(config.decode.problems());
        }
        let items = match raw.audio {
            Some(audio) => audio_items(&audio, base, &mut problems),
            None => Vec::new(),
        };
        if items.is_empty() && problems.is_empty() {
            problems.push("audio: no audio files (add [[audio]] tables or audio = [...])".into());
        }
        let mut seen = HashSet::new();
        for item in &items {
            if let Err(why) = check_id(&item.id) {
                problems.push(format!("audio: id {:?} {why}", item.id));
            } else if !seen.insert(item.id.as_str()) {
                problems.push(format!(
                    "audio: id {:?} is used twice (give [[audio]] items distinct ids)",
                    item.id
                ));
            }
        }
        match config {
            Some(config) if problems.is_empty() => Ok(Manifest {
                config,
                snapshot_dir: resolve(raw.snapshots.as_deref().unwrap_or(Path::new("snapshots"))),
                items,
                source: source.into(),
            }),
            _ => Err(problems),
        }
    }

    /// `<snapshot_dir>/<id>.snap`.
    pub fn snapshot_path(&self, item: &Item) -> PathBuf {
        self.snapshot_dir.join(format!("{}.snap", item.id))
    }
}

/// Ids name files: no separators, no leading dot, nothing invisible.
fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        Err("is empty")
    } else if id.starts_with('.') {
        Err("starts with a dot")
    } else if id.contains(['/', '\\']) || id.chars().any(char::is_control) {
        Err("contains a path separator or a control character")
    } else {
        Ok(())
    }
}

fn audio_items(value: &toml::Value, base: &Path, problems: &mut Vec<String>) -> Vec<Item> {
    let entries = match value {
        toml::Value::Array(entries) => entries.iter().collect(),
        one => vec![one],
    };
    let mut items = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        match entry {
            toml::Value::String(pattern) => match expand(base, pattern) {
                Ok(paths) if paths.is_empty() => problems.push(format!(
                    "audio[{i}]: {pattern:?} names no audio file or folder of audio files"
                )),
                Ok(paths) => items.extend(paths.into_iter().map(|path| {
                    let id = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    item(id, path, base, None)
                })),
                Err(e) => problems.push(format!("audio[{i}]: {pattern:?}: {e}")),
            },
            toml::Value::Table(_) => match entry.clone().try_into::<RawItem>() {
                Ok(raw) => {
                    let path = base.join(&raw.path);
                    let id = raw.id.unwrap_or_else(|| {
                        path.file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    items.push(item(id, path, base, raw.reference));
                }
                Err(e) => problems.push(format!("audio[{i}]: {}", e.to_string().trim_end())),
            },
            other => problems.push(format!(
                "audio[{i}]: expected a path, a glob or a table {{ id, path, reference }}, found {}",
                other.type_str()
            )),
        }
    }
    items
}

fn item(id: String, path: PathBuf, base: &Path, reference: Option<String>) -> Item {
    let shown = path.strip_prefix(base).unwrap_or(&path);
    let input = shown
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    let input = if shown.is_absolute() {
        shown.display().to_string()
    } else {
        input
    };
    Item {
        id,
        path,
        input,
        reference,
    }
}

fn has_wildcard(part: &str) -> bool {
    part.contains(['*', '?'])
}

/// The files an `audio` string names: a file (kept even when missing, so
/// that the run reports it), the audio files directly inside a folder, or
/// the audio files a glob matches (`*` and `?` within a name, `**` for any
/// number of folders), in name order.
fn expand(base: &Path, pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let full = base.join(pattern);
    if !has_wildcard(pattern) {
        if !full.is_dir() {
            return Ok(vec![full]);
        }
        let mut inside: Vec<PathBuf> = std::fs::read_dir(&full)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        inside.retain(|p| p.is_file() && is_audio(p));
        inside.sort();
        return Ok(inside);
    }
    let mut root = PathBuf::new();
    let mut parts: Vec<String> = Vec::new();
    for component in full.components() {
        let text = component.as_os_str().to_string_lossy().into_owned();
        if parts.is_empty() && !matches!(component, Component::Normal(_) if has_wildcard(&text)) {
            root.push(component);
        } else {
            parts.push(text);
        }
    }
    if parts.last().is_some_and(|p| p == "**") {
        parts.push("*".into());
    }
    let mut out = Vec::new();
    walk(&root, &parts, &mut out);
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

fn walk(dir: &Path, parts: &[String], out: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if first == "**" {
        walk(dir, rest, out);
        for sub in sorted_entries(dir).into_iter().filter(|p| p.is_dir()) {
            if !hidden(&sub) {
                walk(&sub, parts, out);
            }
        }
        return;
    }
    if !has_wildcard(first) {
        let next = dir.join(first);
        if rest.is_empty() {
            if next.is_file() && is_audio(&next) {
                out.push(next);
            }
        } else if next.is_dir() {
            walk(&next, rest, out);
        }
        return;
    }
    let pattern: Vec<char> = first.chars().collect();
    for entry in sorted_entries(dir) {
        let name: Vec<char> = match entry.file_name() {
            Some(n) => n.to_string_lossy().chars().collect(),
            None => continue,
        };
        if (hidden(&entry) && !first.starts_with('.')) || !wildcard_match(&pattern, &name) {
            continue;
        }
        if rest.is_empty() {
            if entry.is_file() && is_audio(&entry) {
                out.push(entry);
            }
        } else if entry.is_dir() {
            walk(&entry, rest, out);
        }
    }
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

/// `*` (any run of characters) and `?` (one character) against a name.
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it is tried against.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            // Let that `*` swallow one more character.
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

// ---------------------------------------------------------------------------
// Snapshots

/// Placeholders for the values whose last digits move with BLAS threading.
const LOGPROB: &str = "[logprob]";
const RATIO: &str = "[ratio]";
const PROB: &str = "[prob]";

#[derive(Serialize)]
struct StableTranscript<'a> {
    text: &'a str,
    segments: Vec<StableSegment<'a>>,
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language_probability: Option<&'static str>,
}

#[derive(Serialize)]
struct StableSegment<'a> {
    id: usize,
    seek: usize,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: &'a [u32],
    temperature: f32,
    avg_logprob: &'static str,
    compression_ratio: &'static str,
    no_speech_prob: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    words: Vec<StableWord<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<&'a str>,
}

#[derive(Serialize)]
struct StableWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
    probability: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<&'a str>,
}

/// Seconds to the millisecond (`5.5600000000000005` → `5.56`).
fn ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The snapshot body of a transcript: openai-whisper's JSON fields with
/// text, times (to the millisecond), tokens and temperatures kept and the
/// probabilities and compression ratios redacted.
pub fn render_snapshot(t: &Transcript) -> String {
    let stable = StableTranscript {
        text: &t.text,
        segments: t
            .segments
            .iter()
            .map(|s| StableSegment {
                id: s.id,
                seek: s.seek,
                start: ms(s.start),
                end: ms(s.end),
                text: &s.text,
                tokens: &s.tokens,
                temperature: s.temperature,
                avg_logprob: LOGPROB,
                compression_ratio: RATIO,
                no_speech_prob: PROB,
                words: s
                    .words
                    .iter()
                    .map(|w| StableWord {
                        word: &w.word.word,
                        start: ms(w.word.start),
                        end: ms(w.word.end),
                        probability: PROB,
                        speaker: w.speaker.as_deref(),
                    })
                    .collect(),
                speaker: s.speaker.as_deref(),
            })
            .collect(),
        language: t.language.as_deref(),
        language_probability: t.language_probability.map(|_| PROB),
    };
    serde_json::to_string_pretty(&stable).expect("transcripts serialize")
}

/// A `.snap` file: insta's YAML header between `---` lines, then the body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotFile {
    /// The manifest that produced it (insta: the test's source file).
    pub source: Option<String>,
    pub expression: Option<String>,
    /// The audio file, relative to the manifest.
    pub input_file: Option<String>,
    pub body: String,
}

impl SnapshotFile {
    /// The file's text, as insta writes it (LF newlines, one at the end).
    pub fn to_text(&self) -> String {
        let mut out = String::from("---\n");
        for (key, value) in [
            ("source", &self.source),
            ("expression", &self.expression),
            ("input_file", &self.input_file),
        ] {
            if let Some(value) = value {
                out += &format!("{key}: {}\n", yaml_scalar(value));
            }
        }
        out += "---\n";
        out += self.body.trim_end();
        out.push('\n');
        out
    }

    /// Reads insta's format leniently: unknown header keys are ignored, and
    /// a file without a header is all body.
    pub fn parse(text: &str) -> SnapshotFile {
        let text = text.replace("\r\n", "\n");
        let mut snapshot = SnapshotFile::default();
        let Some(after_open) = text.strip_prefix("---\n") else {
            snapshot.body = text.trim_end().to_string();
            return snapshot;
        };
        let (header, body) = match after_open.find("\n---\n") {
            Some(at) => (&after_open[..at], &after_open[at + 5..]),
            None if after_open.starts_with("---\n") => ("", &after_open[4..]),
            None => ("", after_open),
        };
        for line in header.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = Some(yaml_unquote(value.trim()));
            match key.trim() {
                "source" => snapshot.source = value,
                "expression" => snapshot.expression = value,
                "input_file" => snapshot.input_file = value,
                _ => {}
            }
        }
        snapshot.body = body.trim_end().to_string();
        snapshot
    }

    /// The `text` field of a JSON body.
    pub fn text(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        json.get("text")?.as_str().map(str::to_owned)
    }
}

/// A YAML scalar: plain when that reads back unchanged, else double-quoted
/// (a JSON string is a valid YAML double-quoted scalar).
fn yaml_scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || "_./-+()@ ".contains(c))
        && !value.starts_with([' ', '-', '@'])
        && !value.ends_with(' ')
        && !matches!(
            value,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off"
        )
        && value.parse::<f64>().is_err();
    if plain {
        value.to_string()
    } else {
        serde_json::to_string(value).expect("strings serialize")
    }
}

fn yaml_unquote(value: &str) -> String {
    if value.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(value) {
            return s;
        }
    }
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    value.to_string()
}

// ---------------------------------------------------------------------------
// Runs

/// How an item compares with its stored snapshot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The snapshot matches.
    Same,
    /// The snapshot differs.
    Changed,
    /// There was no snapshot.
    New,
    /// No transcript: missing audio, a decode error, an unreadable snapshot.
    Failed,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Same => "same",
            Status::Changed => "changed",
            Status::New => "new",
            Status::Failed => "failed",
        })
    }
}

/// The result for one item.
#[derive(Clone, Debug)]
pub struct ItemReport {
    pub id: String,
    pub audio: PathBuf,
    pub snapshot: PathBuf,
    pub status: Status,
    /// Why the item failed, or why its snapshot could not be written.
    pub error: Option<String>,
    pub transcript: Option<Transcript>,
    /// The text of the stored snapshot, when there is one.
    pub stored_text: Option<String>,
    /// Word errors of the new text against the stored snapshot's text.
    pub vs_snapshot: Option<WordErrors>,
    /// Word errors of the new text against the manifest's reference.
    pub vs_reference: Option<WordErrors>,
    /// Changed items: the text with `[-removed-]` and `{+added+}` words,
    /// long unchanged stretches shortened to `…`.
    pub word_diff: Option<String>,
    /// Changed items: a unified diff of the snapshot files' bodies.
    pub line_diff: Option<String>,
    /// `--accept` wrote the new snapshot.
    pub written: bool,
    /// Wall-clock seconds of the item.
    pub seconds: f64,
}

impl ItemReport {
    /// The item needs no attention: its snapshot matches or was accepted.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Same || (self.written && self.error.is_none())
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Report {
    pub items: Vec<ItemReport>,
    /// `.snap` files in the snapshot folder that no item names.
    pub unreferenced: Vec<PathBuf>,
    pub accepted: bool,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.items.iter().filter(|i| i.status == status).count()
    }

    /// Summed word errors of the items with a reference and a transcript.
    pub fn vs_references(&self) -> WordErrors {
        self.items
            .iter()
            .filter_map(|i| i.vs_reference)
            .fold(WordErrors::default(), |a, b| a + b)
    }

    /// Items with a reference and a transcript.
    pub fn referenced_items(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.vs_reference.is_some())
            .count()
    }

    /// Summed word errors against the stored snapshots' texts.
    pub fn vs_snapshots(&self) -> WordErrors {
        self.items
            .iter()
            .filter_map(|i| i.vs_snapshot)
            .fold(WordErrors::default(), |a, b| a + b)
    }

    /// Nothing changed, new or failed (or, with `accept`, every change was
    /// written and nothing failed).
    pub fn passed(&self) -> bool {
        self.items.iter().all(ItemReport::is_ok)
    }
}

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
/// failing item is reported and the run goes on.
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
        transcribe(item, progress)
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

/// Unchanged words kept on each side of a change.
const WORD_CONTEXT: usize = 6;

/// `old` → `new` word by word: `[-removed-]`, `{+added+}`; unchanged
/// stretches longer than twice [`WORD_CONTEXT`] words are shortened.
pub fn word_diff(old: &str, new: &str) -> String {
    let (old, new) = (old.trim(), new.trim());
    let diff = TextDiff::from_words(old, new);
    // Runs of (tag, words).
    let mut runs: Vec<(ChangeTag, Vec<&str>)> = Vec::new();
    for change in diff.iter_all_changes() {
        let word = change.value().trim();
        if word.is_empty() {
            continue;
        }
        match runs.last_mut() {
            Some((tag, words)) if *tag == change.tag() => words.push(word),
            _ => runs.push((change.tag(), vec![word])),
        }
    }
    if let [(ChangeTag::Equal, words)] = runs.as_slice() {
        return words.join(" ");
    }
    let last = runs.len().saturating_sub(1);
    let mut parts = Vec::new();
    for (i, (tag, words)) in runs.iter().enumerate() {
        match tag {
            ChangeTag::Delete => parts.push(format!("[-{}-]", words.join(" "))),
            ChangeTag::Insert => parts.push(format!("{{+{}+}}", words.join(" "))),
            ChangeTag::Equal => {
                let keep_head = if i == 0 { 0 } else { WORD_CONTEXT };
                let keep_tail = if i == last { 0 } else { WORD_CONTEXT };
                if words.len() > keep_head + keep_tail + 1 {
                    let mut shown: Vec<&str> = words[..keep_head].to_vec();
                    shown.push("…");
                    shown.extend(&words[words.len() - keep_tail..]);
                    parts.push(shown.join(" "));
                } else {
                    parts.push(words.join(" "));
                }
            }
        }
    }
    parts.join(" ")
}

/// A unified diff (3 lines of context) of two snapshot bodies.
pub fn line_diff(stored: &str, new: &str, name: &str) -> String {
    let (stored, new) = (
        format!("{}\n", stored.trim_end()),
        format!("{}\n", new.trim_end()),
    );
    TextDiff::from_lines(&stored, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (stored)"), &format!("{name} (new)"))
        .to_string()
}

fn unreferenced(manifest: &Manifest) -> Vec<PathBuf> {
    let ids: HashSet<&str> = manifest.items.iter().map(|i| i.id.as_str()).collect();
    sorted_entries(&manifest.snapshot_dir)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "snap")
                && p.file_stem()
                    .is_some_and(|s| !ids.contains(s.to_string_lossy().as_ref()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn wildcards_match_names() {
        let m = |p: &str, n: &str| {
            wildcard_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("*.flac", "a.flac"));
        assert!(m("*.flac", ".flac"));
        assert!(!m("*.flac", "a.flac.txt"));
        assert!(m("a?c*", "abcdef"));
        assert!(!m("a?c", "ac"));
        assert!(m("*b*b*", "abxxbxx"));
        assert!(!m("*b*b*", "abxx"));
        assert!(m("*", ""));
    }

    #[test]
    fn audio_lists_tables_folders_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for f in [
            "clips/a/1.flac",
            "clips/a/2.wav",
            "clips/a/notes.txt",
            "clips/b/3.flac",
            "clips/.hidden/4.flac",
            "top.wav",
        ] {
            touch(&base.join(f));
        }
        let manifest = Manifest::from_toml(
            r#"
            model = "tiny.en"
            snapshots = "snaps"
            audio = [
                "clips/**/*.flac",
                "clips/a",
                { id = "jfk", path = "top.wav", reference = "ask not" },
                "missing.wav",
            ]
            [decode]
            temperature = 0.0
            "#,
            base,
            "m.toml",
        )
        .unwrap_err();
        // 1.flac comes twice (glob and folder): a duplicate id.
        assert_eq!(manifest.len(), 1, "{manifest:?}");
        assert!(manifest[0].contains("\"1\" is used twice"), "{manifest:?}");

        let manifest = Manifest::from_toml(
            r#"
            model = "tiny.en"
            snapshots = "snaps"
            audio = ["clips/*/?.flac", "clips/a/*.wav", "missing.wav"]
            [[audio]]
            "#,
            base,
            "m.toml",
        );
        assert!(manifest.is_err(), "audio given twice is a TOML error");

        let manifest = Manifest::from_toml(
            r#"
            model = "tiny.en"
            snapshots = "snaps"
            audio = ["clips/*/?.flac", "clips/a/*.wav", "missing.wav", { path = "top.wav" }]
            [decode]
            temperature = 0.0
            "#,
            base,
            "m.toml",
        )
        .unwrap();
        let got: Vec<(&str, &str)> = manifest
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.input.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("1", "clips/a/1.flac"),
                ("3", "clips/b/3.flac"),
                ("2", "clips/a/2.wav"),
                ("missing", "missing.wav"),
                ("top", "top.wav"),
            ]
        );
        assert_eq!(manifest.config.decode.temperature, vec![0.0]);
        assert_eq!(manifest.config.model, "tiny.en");
        assert_eq!(manifest.snapshot_dir, base.join("snaps"));
        assert_eq!(
            manifest.snapshot_path(&manifest.items[0]),
            base.join("snaps/1.snap")
        );

        let folder = Manifest::from_toml("audio = \"clips/a\"", base, "m.toml").unwrap();
        assert_eq!(folder.items.len(), 2, "a folder gives its audio files");
        assert_eq!(folder.snapshot_dir, base.join("snapshots"));
    }

    #[test]
    fn manifest_problems_are_listed_together() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.toml"), "model = \"base\"\n").unwrap();
        let problems = Manifest::from_toml(
            r#"
            config = "run.toml"
            model = "tiny.en"
            audio = ["nothing/*.wav", { id = "a/x", path = "a.wav" }, { id = "a", path = "b.wav", refrence = "x" }, 3]
            "#,
            dir.path(),
            "m.toml",
        )
        .unwrap_err();
        let all = problems.join("\n");
        assert_eq!(problems.len(), 5, "{all}");
        for needle in [
            "not both",
            "names no audio file",
            "unknown field `refrence`",
            "found integer",
            "contains a path separator",
        ] {
            assert!(all.contains(needle), "{needle}: {all}");
        }
        let unknown = Manifest::from_toml("snapshot = \"x\"", dir.path(), "m.toml").unwrap_err();
        assert!(
            unknown[0].contains("unknown field `snapshot`"),
            "{unknown:?}"
        );

        let from_config = Manifest::from_toml(
            "config = \"run.toml\"\naudio = \"a.wav\"",
            dir.path(),
            "m.toml",
        )
        .unwrap();
        assert_eq!(from_config.config.model, "base");
        assert_eq!(from_config.items[0].path, dir.path().join("a.wav"));
        let bad_decode = Manifest::from_toml(
            "audio = \"a.wav\"\n[decode]\ntemperature = []",
            dir.path(),
            "m.toml",
        )
        .unwrap_err();
        assert!(bad_decode[0].contains("temperature"), "{bad_decode:?}");
    }

    #[test]
    fn snapshot_files_round_trip_and_insta_reads_them() {
        let file = SnapshotFile {
            source: Some("regress.toml".into()),
            expression: Some("transcript".into()),
            input_file: Some("audio/it's: a \"file\".wav".into()),
            body: "{\n  \"text\": \" Hello.\"\n}".into(),
        };
        let text = file.to_text();
        assert!(text.starts_with("---\nsource: regress.toml\nexpression: transcript\n"));
        assert!(text.ends_with("---\n{\n  \"text\": \" Hello.\"\n}\n"));
        assert_eq!(SnapshotFile::parse(&text), file);
        assert_eq!(
            SnapshotFile::parse(&text.replace('\n', "\r\n")),
            file,
            "CRLF checkouts"
        );
        assert_eq!(file.text().as_deref(), Some(" Hello."));
        assert_eq!(SnapshotFile::parse("{}\n").body, "{}", "no header");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        write_atomically(&path, &text).unwrap();
        let insta = insta::Snapshot::from_file(&path).unwrap();
        assert_eq!(insta.metadata().source(), file.source.as_deref());
        assert_eq!(insta.metadata().expression(), file.expression.as_deref());
        assert_eq!(insta.metadata().input_file(), file.input_file.as_deref());
        assert_eq!(
            insta.as_text().unwrap().to_string(),
            file.body,
            "insta reads the same body"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");

        // A rename that fails (a folder is in the way) leaves no temporary file.
        let blocked = dir.path().join("blocked.snap");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), "x").unwrap();
        assert!(write_atomically(&blocked, "new").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn word_diffs_mark_changes_and_shorten_the_rest() {
        assert_eq!(
            word_diff(" the cat sat on the mat", " the cat sat on a mat"),
            "the cat sat on [-the-] {+a+} mat"
        );
        let old =
            "x y zero one two three four five six seven eight nine ten eleven twelve thirteen z w";
        let new = old.replace("seven", "heaven");
        assert_eq!(
            word_diff(old, &new),
            "… one two three four five six [-seven-] {+heaven+} eight nine ten eleven twelve thirteen …"
        );
        assert_eq!(word_diff("a b", "a b"), "a b");
    }
}
