//! What a regression run found, per item and in total.

use std::path::PathBuf;

use crate::transcript::Transcript;
use crate::wer::WordErrors;

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
        self.summed(|i| i.vs_reference)
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
        self.summed(|i| i.vs_snapshot)
    }

    fn summed(&self, errors: impl Fn(&ItemReport) -> Option<WordErrors>) -> WordErrors {
        self.items
            .iter()
            .filter_map(errors)
            .fold(WordErrors::default(), |a, b| a + b)
    }

    /// Nothing changed, new or failed (or, with `accept`, every change was
    /// written and nothing failed).
    pub fn passed(&self) -> bool {
        self.items.iter().all(ItemReport::is_ok)
    }
}
