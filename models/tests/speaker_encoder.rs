//! Resemblyzer's speaker encoder on MLX against Resemblyzer's own
//! `VoiceEncoder("cpu")` on utterances of ../shared/data/diarization
//! (fixture from scripts/make_speaker_fixtures.py). The weights are the
//! registry asset `resemblyzer`, converted by asr-converters.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use asr_converters::speaker_encoder::fetch_speaker_encoder;
use asr_models::speaker_encoder::{MelSpectrogram, SpeakerEncoder, SpeakerEncoderConfig};

/// Same order as FILES in scripts/make_speaker_fixtures.py.
const FILES: [&str; 2] = [
    "data/diarization/meeting-4spk/mixture.wav",
    "data/diarization/sample.wav",
];

/// Speaker of each fixture utterance that has a label (the last two, very
/// short, are left out of the behaviour test).
const SPEAKERS: [&str; 10] = [
    "FEE013",
    "FEE013",
    "FEE016",
    "FEE016",
    "MEO015",
    "MEO015",
    "speaker90",
    "speaker90",
    "speaker91",
    "speaker91",
];

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    if FILES.iter().all(|f| dir.join(f).is_file()) {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/data/diarization (mixture.wav, sample.wav) not present");
        None
    }
}

fn fixture_f32(name: &str) -> Vec<f32> {
    common::npz_values("speaker-encoder.npz", name)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn fixture_usize(name: &str) -> Vec<usize> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speaker-encoder.npz");
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let a: ndarray::ArrayD<i64> = npz.by_name(name).unwrap();
    a.iter().map(|&v| v as usize).collect()
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, 16000);
    reader
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

/// The fixture's utterances, cut from the shared recordings.
fn utterances(shared: &Path) -> Vec<Vec<f32>> {
    let tracks: Vec<Vec<f32>> = FILES.iter().map(|f| read_wav(&shared.join(f))).collect();
    let (file, start, end) = (
        fixture_usize("utt_file"),
        fixture_usize("utt_start"),
        fixture_usize("utt_end"),
    );
    (0..file.len())
        .map(|i| tracks[file[i]][start[i]..end[i]].to_vec())
        .collect()
}

/// The converted registry weights (fetched and converted once per cache).
fn encoder() -> SpeakerEncoder {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    SpeakerEncoder::load(DIR.get_or_init(|| fetch_speaker_encoder().unwrap())).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn rows(values: &[f32], width: usize) -> Vec<&[f32]> {
    values.chunks(width).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn mel_filterbank_is_librosas() {
    let mel = MelSpectrogram::new(&SpeakerEncoderConfig::resemblyzer()).unwrap();
    let ours = mel.filters().unwrap();
    assert_eq!(ours.shape(), vec![40, 201]);
    let diff = max_abs_diff(&ours.to_vec::<f32>().unwrap(), &fixture_f32("mel_filters"));
    assert!(diff < 1e-7, "filterbank differs from librosa's by {diff}");
}

#[test]
fn mel_matches_wav_to_mel_spectrogram() {
    let Some(shared) = shared() else { return };
    let first = &utterances(&shared)[0];
    let mel = encoder().mel.forward(first).unwrap();
    assert_eq!(mel.shape(), vec![501, 40]);
    let ours = mel.to_vec::<f32>().unwrap();
    let theirs = fixture_f32("mel0");
    // Power values span many decades: compare relative to each frame's peak.
    let mut worst = 0f32;
    for (a, b) in rows(&ours, 40).into_iter().zip(rows(&theirs, 40)) {
        let peak = b.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
        worst = worst.max(max_abs_diff(a, b) / peak);
    }
    eprintln!("mel: worst difference {worst:e} of the frame's peak");
    assert!(worst < 5e-6, "mel differs by {worst:e} of a frame's peak");
}

#[test]
fn embeddings_match_resemblyzer() {
    let Some(shared) = shared() else { return };
    let utterances = utterances(&shared);
    let refs: Vec<&[f32]> = utterances.iter().map(Vec::as_slice).collect();
    let out = encoder().embed(&refs).unwrap();

    let counts: Vec<usize> = out.partial_starts.iter().map(Vec::len).collect();
    assert_eq!(counts, fixture_usize("partial_counts"));
    let starts: Vec<usize> = out.partial_starts.concat();
    assert_eq!(starts, fixture_usize("partial_starts"));

    let partials = out.partials.to_vec::<f32>().unwrap();
    let partial_diff = max_abs_diff(&partials, &fixture_f32("partials"));
    let embeddings = out.utterances.to_vec::<f32>().unwrap();
    assert_eq!(out.utterances.shape(), vec![utterances.len() as i32, 256]);
    let embedding_diff = max_abs_diff(&embeddings, &fixture_f32("embeddings"));
    eprintln!("max |diff|: partials {partial_diff:e}, utterances {embedding_diff:e}");
    assert!(partial_diff < 1e-5, "partials differ by {partial_diff}");
    assert!(
        embedding_diff < 1e-5,
        "embeddings differ by {embedding_diff}"
    );
    for row in rows(&embeddings, 256) {
        assert!((dot(row, row) - 1.0).abs() < 1e-5);
    }
}

#[test]
fn an_utterance_embeds_alike_alone_and_in_a_batch() {
    let Some(shared) = shared() else { return };
    let utterances = utterances(&shared);
    let refs: Vec<&[f32]> = utterances.iter().map(Vec::as_slice).collect();
    let encoder = encoder();
    let batch = encoder.embed_utterances(&refs).unwrap();
    let batch = batch.to_vec::<f32>().unwrap();
    for i in [5, 10] {
        let alone = encoder.embed_utterances(&[refs[i]]).unwrap();
        let diff = max_abs_diff(&alone.to_vec::<f32>().unwrap(), rows(&batch, 256)[i]);
        assert!(diff < 1e-5, "utterance {i}: {diff}");
    }
}

#[test]
fn the_same_speaker_is_closer_than_any_other() {
    let Some(shared) = shared() else { return };
    let utterances = utterances(&shared);
    let refs: Vec<&[f32]> = utterances[..SPEAKERS.len()]
        .iter()
        .map(Vec::as_slice)
        .collect();
    let embeddings = encoder().embed_utterances(&refs).unwrap();
    let embeddings = embeddings.to_vec::<f32>().unwrap();
    let e = rows(&embeddings, 256);
    let (mut same, mut other) = (f32::MAX, f32::MIN);
    for i in 0..e.len() {
        for j in i + 1..e.len() {
            let cosine = dot(e[i], e[j]);
            if SPEAKERS[i] == SPEAKERS[j] {
                same = same.min(cosine);
            } else {
                other = other.max(cosine);
            }
        }
    }
    eprintln!("cosine: same speaker ≥ {same:.3}, different speakers ≤ {other:.3}");
    assert!(same > other, "same speaker ≥ {same}, others ≤ {other}");
}

/// Time to embed 60 s of audio as twelve 5 s utterances (run in release
/// with `-- --ignored --nocapture`).
#[test]
#[ignore]
fn speed_of_a_minute_in_5_s_utterances() {
    let Some(shared) = shared() else { return };
    let audio = read_wav(&shared.join(FILES[0]));
    let minute: Vec<&[f32]> = audio[..60 * 16000].chunks(5 * 16000).collect();
    let encoder = encoder();
    encoder.embed_utterances(&minute).unwrap();
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        let out = encoder.embed_utterances(&minute).unwrap();
        assert_eq!(out.shape(), vec![12, 256]);
    }
    let each = start.elapsed().as_secs_f64() / runs as f64;
    eprintln!("60 s as 12 × 5 s utterances (60 partials): {each:.3} s per call");
}
