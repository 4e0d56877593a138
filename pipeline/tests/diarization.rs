//! The diarizer on MLX with the registry's weights (pyannote segmentation,
//! Resemblyzer) against the shared recordings' reference turns: the
//! diarization error rate as pyannote.metrics computes it (collar 0.25 s,
//! overlap scored), and a run that diarizes while transcribing.

use std::path::{Path, PathBuf};

use asr_pipeline::config::Config;
use asr_pipeline::der::{diarization_errors, parse_rttm};
use asr_pipeline::stages::audio::Recording;
use asr_pipeline::stages::diarize::{load_diarizer, DiarizationOptions};
use asr_pipeline::stages::output::{render_with, Format, SubtitleOptions};
use asr_pipeline::{Diarizer, Pipeline, SpeakerTurn};

fn diarization_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/diarization");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

fn reference(path: &Path) -> Vec<SpeakerTurn> {
    parse_rttm(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn speakers(turns: &[SpeakerTurn]) -> usize {
    let mut names: Vec<&str> = turns.iter().map(|t| t.speaker.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

/// DER (collar 0.25 s) and the speakers found on `wav`, diarized in blocks.
fn der_of(diarizer: &dyn Diarizer, wav: &Path, rttm: &Path) -> (f64, usize) {
    let turns = diarizer.diarize(Recording::File(wav), &|_| {}).unwrap();
    let errors = diarization_errors(&reference(rttm), &turns, 0.25);
    eprintln!("{}: {errors:?}, DER {:.3}", wav.display(), errors.rate());
    (errors.rate(), speakers(&turns))
}

#[test]
fn the_shared_recordings_are_diarized_within_the_goals() {
    let Some(data) = diarization_data() else {
        return;
    };
    let diarizer = load_diarizer(&DiarizationOptions::default()).unwrap();
    let (der, found) = der_of(
        &diarizer,
        &data.join("sample.wav"),
        &data.join("sample.rttm"),
    );
    assert!(der <= 0.10, "sample.wav DER {der}");
    assert_eq!(found, 2);
    let meeting = data.join("meeting-4spk");
    let (der, found) = der_of(
        &diarizer,
        &meeting.join("mixture.wav"),
        &meeting.join("mixture.rttm"),
    );
    assert!(der <= 0.20, "mixture.wav DER {der}");
    assert!((3..=5).contains(&found), "{found} speakers");
    // Told the number of speakers, it finds that many.
    let four = load_diarizer(&DiarizationOptions {
        num_speakers: Some(4),
        ..DiarizationOptions::default()
    })
    .unwrap();
    let turns = four
        .diarize(Recording::File(&meeting.join("mixture.wav")), &|_| {})
        .unwrap();
    assert_eq!(speakers(&turns), 4);
}

#[test]
fn the_same_samples_in_memory_give_the_same_turns_as_the_file() {
    let Some(data) = diarization_data() else {
        return;
    };
    let wav = data.join("sample.wav");
    let samples = asr_pipeline::stages::audio::load_audio(&wav).unwrap();
    let diarizer = load_diarizer(&DiarizationOptions::default()).unwrap();
    let from_file = diarizer.diarize(Recording::File(&wav), &|_| {}).unwrap();
    let from_memory = diarizer
        .diarize(Recording::Samples(&samples), &|_| {})
        .unwrap();
    assert_eq!(from_file, from_memory);
}

#[test]
fn a_run_with_diarization_labels_segments_and_writes_rttm() {
    let Some(data) = diarization_data() else {
        return;
    };
    let wav = data.join("sample.wav");
    let config = Config::from_toml(
        "formats = [\"json\", \"rttm\"]\n[diarization]\nnum_speakers = 2\n",
        Path::new("."),
    )
    .unwrap();
    let pipeline = Pipeline::from_config(&config).unwrap();
    let names: Vec<&str> = pipeline.stages().stages.iter().map(|s| s.name).collect();
    assert_eq!(names.last(), Some(&"diarize"));
    // First used on another thread than the one that loaded its models.
    let transcript = std::thread::scope(|s| s.spawn(|| pipeline.transcribe_file(&wav)).join())
        .unwrap()
        .unwrap();
    assert_eq!(speakers(&transcript.speakers), 2);
    assert!(!transcript.segments.is_empty());
    // A segment gets a speaker where someone speaks (Whisper may fill the
    // silence before the first turn with a segment of its own).
    for segment in &transcript.segments {
        let spoken = transcript
            .speakers
            .iter()
            .any(|t| t.start < segment.end && segment.start < t.end);
        assert_eq!(segment.speaker.is_some(), spoken, "{segment:?}");
    }
    assert!(transcript.segments.iter().any(|s| s.speaker.is_some()));
    let rttm = render_with(
        &transcript,
        Format::Rttm,
        &SubtitleOptions::default(),
        "sample",
    );
    assert_eq!(rttm.lines().count(), transcript.speakers.len());
    assert_eq!(parse_rttm(&rttm).unwrap().len(), transcript.speakers.len());
    let srt = render_with(
        &transcript,
        Format::Srt,
        &SubtitleOptions::default(),
        "sample",
    );
    assert!(srt.contains("[SPEAKER_0"), "{srt}");
}

#[test]
fn bad_settings_and_missing_models_are_named() {
    let bad = DiarizationOptions {
        segmentation: "/nonexistent/segmentation.bin".into(),
        ..DiarizationOptions::default()
    };
    let err = load_diarizer(&bad).err().unwrap().to_string();
    assert!(err.contains("/nonexistent/segmentation.bin"), "{err}");
    let err = Config::from_toml(
        "formats = [\"rttm\"]\n[diarization]\nmin_speakers = 3\nmax_speakers = 2\n",
        Path::new("."),
    )
    .unwrap()
    .problems()
    .join("; ");
    assert!(err.contains("diarization.min_speakers"), "{err}");
    let err = Config::from_toml("formats = [\"rttm\"]\n", Path::new("."))
        .unwrap()
        .problems()
        .join("; ");
    assert!(
        err.contains("rttm") && err.contains("[diarization]"),
        "{err}"
    );
}
