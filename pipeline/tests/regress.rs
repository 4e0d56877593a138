//! Regression runs (`pipeline regress`): the project's own regression set,
//! the four LibriSpeech clips of ../shared/data against the snapshots in
//! tests/regress/, the example manifest over jfk.wav, and the run's
//! behaviour with a fake transcriber: changes found with their diff and
//! WER, a missing file reported as a failure, snapshots accepted atomically.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use asr_pipeline::regress::{
    self, render_snapshot, Event, Item, Manifest, Report, RunOptions, SnapshotFile, Status,
};
use asr_pipeline::wer::{words, WordErrors};
use asr_pipeline::{Progress, Segment, Transcript};

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a manifest with the real model; `None` (skipped) when the model
/// cannot be loaded.
fn run_with_model(manifest: &Manifest) -> Option<Report> {
    match regress::run_pipeline(manifest, &RunOptions::default(), &|_| {}) {
        Ok(report) => Some(report),
        Err(e) => {
            eprintln!("skipped: cannot load {}: {e}", manifest.config.model);
            None
        }
    }
}

/// Every item is unchanged, and each snapshot file reads back through insta
/// itself with the body this run rendered.
fn assert_all_same(report: &Report) {
    for item in &report.items {
        assert_eq!(
            item.status,
            Status::Same,
            "{}: {:?}\n{}",
            item.id,
            item.error,
            item.line_diff.as_deref().unwrap_or("")
        );
        let transcript = item.transcript.as_ref().unwrap();
        let insta = insta::Snapshot::from_file(&item.snapshot).unwrap();
        assert_eq!(
            insta.as_text().unwrap().to_string(),
            render_snapshot(transcript),
            "{}",
            item.id
        );
        assert_eq!(
            item.vs_snapshot.unwrap().errors,
            0,
            "{}: same snapshot, same words",
            item.id
        );
    }
    assert!(report.passed());
    assert!(report.unreferenced.is_empty(), "{:?}", report.unreferenced);
}

#[derive(serde::Deserialize)]
struct Clip {
    id: String,
    openai_whisper: String,
}

#[test]
fn librispeech_clips_match_their_snapshots() {
    if !here().join("../../shared/data/librispeech").is_dir() {
        eprintln!("skipped: ../shared/data/librispeech not present");
        return;
    }
    let manifest = Manifest::from_file(&here().join("tests/regress/librispeech.toml")).unwrap();
    assert_eq!(manifest.items.len(), 4);
    let Some(report) = run_with_model(&manifest) else {
        return;
    };
    assert_all_same(&report);

    // The snapshots hold openai-whisper's own words for these clips.
    let clips: Vec<Clip> = serde_json::from_str(
        &std::fs::read_to_string(here().join("tests/fixtures/clips-tiny.en.json")).unwrap(),
    )
    .unwrap();
    for item in &report.items {
        let clip = clips.iter().find(|c| c.id == item.id).unwrap();
        let stored = item.stored_text.as_deref().unwrap();
        assert_eq!(words(stored), words(&clip.openai_whisper), "{}", item.id);
    }
    // 2 errors in the first clip (flower-fattened, and), 3 in
    // "Stuffered into you, his belly counseled him".
    assert_eq!(
        report.vs_references(),
        WordErrors {
            errors: 5,
            reference_words: 58
        }
    );
    assert_eq!(report.referenced_items(), 4);
}

#[test]
fn the_example_manifest_matches_its_snapshot() {
    let manifest = Manifest::from_file(&here().join("../examples/regress.toml")).unwrap();
    assert_eq!(manifest.config.model, "tiny.en", "from examples/jfk.toml");
    let Some(report) = run_with_model(&manifest) else {
        return;
    };
    assert_all_same(&report);
    assert_eq!(report.vs_references().errors, 0);
    assert_eq!(
        report.items[0].stored_text.as_deref().map(str::trim),
        Some("And so my fellow Americans ask not what your country can do for you ask what you can do for your country")
    );
}

#[test]
fn a_parakeet_manifest_matches_its_snapshot_and_parakeet_mlx() {
    let manifest = Manifest::from_file(&here().join("tests/regress/parakeet.toml")).unwrap();
    let report = regress::run_pipeline(&manifest, &RunOptions::default(), &|_| {}).unwrap();
    assert_all_same(&report);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(here().join("tests/fixtures/parakeet-jfk.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        report.items[0].stored_text.as_deref().map(str::trim),
        reference["text"].as_str()
    );
}

#[test]
fn a_qwen3_asr_manifest_matches_its_snapshot() {
    let manifest = Manifest::from_file(&here().join("tests/regress/qwen3_asr.toml")).unwrap();
    let report = regress::run_pipeline(&manifest, &RunOptions::default(), &|_| {}).unwrap();
    assert_all_same(&report);
}

// ---------------------------------------------------------------------------
// A fake transcriber: item id → text, one segment per text.

fn transcript(text: &str) -> Transcript {
    Transcript {
        text: format!(" {text}"),
        segments: vec![Segment {
            id: 0,
            seek: 0,
            start: 0.0,
            end: 0.1 + 0.2, // 0.30000000000000004 in the transcript, 0.3 in snapshots
            text: format!(" {text}"),
            tokens: vec![50363, 1, 2, 3, 50378],
            temperature: 0.0,
            avg_logprob: -0.25,
            compression_ratio: 1.1,
            no_speech_prob: 0.01,
            words: Vec::new(),
            speaker: None,
        }],
        language: Some("en".into()),
        language_probability: None,
        speakers: Vec::new(),
        timings: Default::default(),
    }
}

/// A folder with audio files (never decoded) and a manifest over them.
struct Set {
    dir: tempfile::TempDir,
}

impl Set {
    fn new(files: &[&str], manifest: &str) -> Set {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), b"not decoded").unwrap();
        }
        std::fs::write(dir.path().join("set.toml"), manifest).unwrap();
        Set { dir }
    }

    fn manifest(&self) -> Manifest {
        Manifest::from_file(&self.dir.path().join("set.toml")).unwrap()
    }

    fn snapshots(&self) -> PathBuf {
        self.dir.path().join("snaps")
    }

    /// Runs with texts per id; ids without one fail to decode.
    fn run(&self, texts: &[(&str, &str)], accept: bool) -> (Report, Vec<String>) {
        let events = RefCell::new(Vec::new());
        let mut transcribe = |item: &Item, progress: &dyn Fn(Progress)| {
            progress(Progress {
                done: 1.0,
                total: Some(1.0),
            });
            texts
                .iter()
                .find(|(id, _)| *id == item.id)
                .map(|(_, text)| transcript(text))
                .ok_or_else(|| format!("{}: cannot decode", item.path.display()))
        };
        let on_event = |e: Event<'_>| {
            events.borrow_mut().push(match e {
                Event::Started { index, total, item } => {
                    format!("start {index}/{total} {}", item.id)
                }
                Event::Audio { index, progress } => format!("audio {index} {}", progress.done),
                Event::Finished { index, report, .. } => {
                    format!("done {index} {} {}", report.id, report.status)
                }
            })
        };
        let report = regress::run(
            &self.manifest(),
            &RunOptions { accept },
            &mut transcribe,
            &on_event,
        );
        (report, events.into_inner())
    }

    fn files_in_snapshots(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.snapshots())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

const MANIFEST: &str = r#"
model = "tiny.en"
snapshots = "snaps"
audio = [
    { id = "cat", path = "cat.wav", reference = "The cat sat on the mat." },
    "dog.wav",
]
"#;

#[test]
fn a_changed_snapshot_is_found_with_its_diff_and_wer() {
    let set = Set::new(&["cat.wav", "dog.wav"], MANIFEST);
    let (first, _) = set.run(
        &[("cat", "The cat sat on the mat."), ("dog", "Woof.")],
        true,
    );
    assert!(first.passed(), "accepted");
    assert_eq!(first.count(Status::New), 2);

    let (report, events) = set.run(&[("cat", "The cat sat on a mat."), ("dog", "Woof.")], false);
    assert!(!report.passed());
    assert_eq!(
        events,
        [
            "start 0/2 cat",
            "audio 0 1",
            "done 0 cat changed",
            "start 1/2 dog",
            "audio 1 1",
            "done 1 dog same"
        ]
    );
    let cat = &report.items[0];
    assert_eq!(cat.status, Status::Changed);
    assert_eq!(cat.stored_text.as_deref(), Some(" The cat sat on the mat."));
    assert_eq!(
        cat.vs_snapshot,
        Some(WordErrors {
            errors: 1,
            reference_words: 6
        })
    );
    assert_eq!(
        cat.vs_reference, cat.vs_snapshot,
        "the reference says 'the'"
    );
    assert_eq!(
        cat.word_diff.as_deref(),
        Some("The cat sat on [-the-] {+a+} mat.")
    );
    let diff = cat.line_diff.as_deref().unwrap();
    for line in [
        "-  \"text\": \" The cat sat on the mat.\",",
        "+  \"text\": \" The cat sat on a mat.\",",
        "-      \"text\": \" The cat sat on the mat.\",",
        "+      \"text\": \" The cat sat on a mat.\",",
        "@@ ",
    ] {
        assert!(
            diff.lines().any(|l| l.starts_with(line)),
            "{line:?} in\n{diff}"
        );
    }
    assert_eq!(
        diff.lines()
            .filter(|l| l.starts_with(['+', '-']) && !l.starts_with("+++") && !l.starts_with("---"))
            .count(),
        4,
        "only the two text lines differ:\n{diff}"
    );
    assert!(!cat.written);
    assert_eq!(report.items[1].status, Status::Same);
    assert_eq!(report.vs_references().errors, 1);

    // Without --accept nothing was written: the stored text is unchanged.
    let stored = std::fs::read_to_string(set.snapshots().join("cat.snap")).unwrap();
    assert_eq!(
        SnapshotFile::parse(&stored).text().as_deref(),
        Some(" The cat sat on the mat.")
    );
}

#[test]
fn a_missing_audio_file_or_a_decode_error_is_a_reported_failure() {
    let set = Set::new(
        &["dog.wav", "bad.wav"],
        &MANIFEST.replace("\"dog.wav\",", "\"dog.wav\", \"bad.wav\","),
    );
    // cat.wav does not exist; bad.wav exists but does not decode.
    let (report, events) = set.run(&[("cat", "Meow."), ("dog", "Woof.")], true);
    assert_eq!(
        report
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.status))
            .collect::<Vec<_>>(),
        [
            ("cat", Status::Failed),
            ("dog", Status::New),
            ("bad", Status::Failed)
        ]
    );
    assert!(
        !events.contains(&"audio 0 1".to_string()),
        "cat.wav is never decoded"
    );
    let cat = &report.items[0];
    assert!(
        cat.error
            .as_deref()
            .unwrap()
            .starts_with("no such audio file: ")
            && cat.error.as_deref().unwrap().ends_with("cat.wav"),
        "{:?}",
        cat.error
    );
    assert!(cat.transcript.is_none() && cat.vs_reference.is_none() && !cat.written);
    assert!(report.items[2]
        .error
        .as_deref()
        .unwrap()
        .ends_with("bad.wav: cannot decode"));
    assert!(report.items[1].written, "the run went on after the failure");
    assert!(!report.passed(), "failures cannot be accepted");
    assert_eq!(report.referenced_items(), 0);
    assert_eq!(set.files_in_snapshots(), ["dog.snap"]);
}

#[test]
fn accept_writes_snapshots_atomically() {
    let set = Set::new(&["cat.wav", "dog.wav"], MANIFEST);
    assert!(!set.snapshots().exists());
    let (report, _) = set.run(&[("cat", "Meow."), ("dog", "Woof.")], true);
    assert!(report.passed() && report.items.iter().all(|i| i.written));
    assert_eq!(
        set.files_in_snapshots(),
        ["cat.snap", "dog.snap"],
        "the folder is created, no temporary file is left"
    );
    let cat_path = set.snapshots().join("cat.snap");
    let first = std::fs::read_to_string(&cat_path).unwrap();
    assert!(
        first.starts_with(
            "---\nsource: set.toml\nexpression: transcript\ninput_file: cat.wav\n---\n{\n"
        ),
        "{first}"
    );
    assert!(first.contains("\"end\": 0.3,"), "times to the millisecond");
    assert!(first.contains("\"avg_logprob\": \"[logprob]\""));
    assert!(!first.contains("-0.25") && !first.contains("1.1"));

    // A second name for the old file: a rename replaces the directory
    // entry and leaves the old file whole; an in-place write would not.
    let link = set.dir.path().join("old-cat.snap.link");
    std::fs::hard_link(&cat_path, &link).unwrap();
    let (report, _) = set.run(&[("cat", "Purr."), ("dog", "Woof.")], true);
    let statuses: Vec<(Status, bool)> =
        report.items.iter().map(|i| (i.status, i.written)).collect();
    assert_eq!(statuses, [(Status::Changed, true), (Status::Same, false)]);
    assert!(report.passed(), "accepted");
    assert_eq!(std::fs::read_to_string(&link).unwrap(), first);
    let second = std::fs::read_to_string(&cat_path).unwrap();
    assert_eq!(
        SnapshotFile::parse(&second).text().as_deref(),
        Some(" Purr.")
    );
    assert_eq!(set.files_in_snapshots(), ["cat.snap", "dog.snap"]);

    // And now everything is the same; a stray snapshot is pointed out.
    std::fs::write(set.snapshots().join("gone.snap"), "---\n---\n{}\n").unwrap();
    let (report, _) = set.run(&[("cat", "Purr."), ("dog", "Woof.")], false);
    assert!(report.passed());
    assert_eq!(report.count(Status::Same), 2);
    assert_eq!(report.unreferenced, [set.snapshots().join("gone.snap")]);
}

#[test]
fn a_panicking_transcriber_fails_its_item_as_a_bug_and_the_run_goes_on() {
    let set = Set::new(&["cat.wav", "dog.wav"], MANIFEST);
    let mut transcribe = |item: &Item, _: &dyn Fn(Progress)| {
        assert_ne!(item.id, "cat", "a decoder bug");
        Ok(transcript("Woof."))
    };
    let report = regress::run(
        &set.manifest(),
        &RunOptions { accept: true },
        &mut transcribe,
        &|_| {},
    );
    let cat = report.items[0].error.as_deref().unwrap();
    assert!(
        cat.starts_with("internal error while transcribing ")
            && cat.contains("cat.wav: assertion")
            && cat.ends_with("(a bug: please report it)"),
        "{cat}"
    );
    assert_eq!(report.items[1].status, Status::New);
    assert_eq!(set.files_in_snapshots(), ["dog.snap"]);
}
