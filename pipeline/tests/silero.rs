//! Silero VAD v6 on MLX against its references
//! (scripts/make_silero_fixtures.py: the silero-vad 6.2.3 model under
//! onnxruntime through faster-whisper 1.2.1's wrapper, and faster-whisper's
//! `get_speech_timestamps`) on jfk.wav, sample.wav, the 4-speaker meeting
//! and a clip of silence and noise: per-frame probabilities within 1e-4,
//! segments equal to the sample, whatever blocks the audio arrives in.

use std::fs::File;
use std::path::Path;

use asr_models::silero::Silero as SileroModel;
use asr_pipeline::stages::audio::load_audio;
use asr_pipeline::stages::vad::silero::{SileroClassifier, SpeechTimestamps, FRAME};
use asr_pipeline::stages::vad::{
    detect_speech, FrameClassifier, SileroSettings, SpeechBlocks, SpeechRegion, VadError,
    VadOptions, VadStage,
};
use ndarray_npy::NpzReader;

const SETS: [&str; 4] = ["default", "split", "strict", "forced"];

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> NpzReader<File> {
    let path = here().join("tests/fixtures/silero-vad.npz");
    NpzReader::new(File::open(path).unwrap()).unwrap()
}

fn probabilities(clip: &str) -> Vec<f32> {
    let a: ndarray::Array1<f32> = fixture().by_name(&format!("{clip}.probs")).unwrap();
    a.to_vec()
}

fn segments(clip: &str, set: &str) -> Vec<SpeechRegion> {
    let a: ndarray::Array2<i64> = fixture()
        .by_name(&format!("{clip}.{set}.segments"))
        .unwrap();
    a.outer_iter()
        .map(|r| SpeechRegion::new(r[0] as usize, r[1] as usize))
        .collect()
}

/// faster-whisper's `VadOptions` of option set `set`.
fn options(set: &str) -> VadOptions {
    let a: ndarray::Array1<f64> = fixture().by_name(&format!("options.{set}")).unwrap();
    VadOptions {
        threshold: Some(a[0]),
        neg_threshold: (!a[1].is_nan()).then_some(a[1]),
        min_speech_ms: Some(a[2] as u32),
        max_speech_s: Some(a[3]),
        min_silence_ms: Some(a[4] as u32),
        speech_pad_ms: Some(a[5] as u32),
        ..VadOptions::default()
    }
}

/// Uniform noise in [-amp, amp): the fixture script's 32-bit LCG, exact in f32.
fn lcg_noise(n: usize, amp: f32, seed: u32) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            ((x >> 8) as f32 / 16_777_216.0 - 0.5) * 2.0 * amp
        })
        .collect()
}

/// The clips of the fixture, when ../shared/data is present.
fn clips() -> Option<Vec<(&'static str, Vec<f32>)>> {
    let data = here().join("../../shared/data");
    if !data.is_dir() {
        eprintln!("skipped: ../shared/data not present");
        return None;
    }
    let jfk = load_audio(&data.join("audio/jfk.wav")).unwrap();
    let sample = load_audio(&data.join("diarization/sample.wav")).unwrap();
    let meeting = load_audio(&data.join("diarization/meeting-4spk/mixture.wav")).unwrap();
    let zeros = |seconds: f64| vec![0.0f32; (seconds * 16_000.0) as usize];
    let gaps = [
        zeros(2.5),
        jfk.clone(),
        lcg_noise(3 * 16_000, 0.02, 1),
        zeros(1.5),
        sample[..7 * 16_000].to_vec(),
        lcg_noise(2 * 16_000 + 500, 0.3, 2),
    ]
    .concat();
    Some(vec![
        ("jfk", jfk),
        ("sample", sample),
        ("meeting", meeting),
        ("gaps", gaps),
    ])
}

fn model() -> SileroModel {
    let dir = asr_converters::silero::fetch_silero_vad().unwrap();
    SileroModel::load(&dir).unwrap()
}

/// A pseudo-random sequence for block sizes.
fn lcg(state: &mut u64) -> usize {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) as usize
}

/// `samples` cut into blocks of random sizes up to `max`.
fn blocks(samples: &[f32], max: usize, seed: &mut u64) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < samples.len() {
        let n = (1 + lcg(seed) % max).min(samples.len() - at);
        out.push(samples[at..at + n].to_vec());
        at += n;
    }
    out
}

/// Regions of a stage fed `blocks`, each push's regions checked against
/// what the stage said could be dropped before it.
fn run(mut stage: VadStage, blocks: &[Vec<f32>]) -> Vec<SpeechRegion> {
    let mut regions = Vec::new();
    for block in blocks {
        let floor = stage.retain_from();
        let found = stage.push(block).unwrap();
        assert!(found.iter().all(|r| r.start >= floor));
        regions.extend(found);
    }
    regions.extend(stage.finish().unwrap());
    regions
}

/// Replays the reference probabilities: the rules alone under test.
struct Replay(std::vec::IntoIter<f32>);

impl FrameClassifier for Replay {
    fn frame_len(&self) -> usize {
        FRAME
    }
    fn classify(&mut self, frames: &[f32]) -> Result<Vec<f32>, VadError> {
        Ok(self.0.by_ref().take(frames.len() / FRAME).collect())
    }
    fn classify_rest(&mut self, _rest: &[f32]) -> Result<Option<f32>, VadError> {
        Ok(self.0.next())
    }
}

fn replay_stage(clip: &str, set: &str) -> VadStage {
    let settings = SileroSettings::from_options(&options(set));
    VadStage::with_parts(
        Box::new(Replay(probabilities(clip).into_iter())),
        Box::new(SpeechTimestamps::new(&settings)),
    )
    .unwrap()
}

#[test]
fn probabilities_match_onnxruntime_in_any_blocks() {
    let Some(clips) = clips() else { return };
    let model = model();
    let mut seed = 3;
    for (clip, samples) in &clips {
        let reference = probabilities(clip);
        let whole = samples.len() / FRAME * FRAME;
        let mut classifier = SileroClassifier::new(model.clone()).unwrap();
        let mut ours = classifier.classify(&samples[..whole]).unwrap();
        ours.extend(classifier.classify_rest(&samples[whole..]).unwrap());
        assert_eq!(ours.len(), reference.len(), "{clip}");
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{clip}: {} frames, max |MLX - onnxruntime| {worst:.2e}",
            ours.len()
        );
        assert!(worst < 1e-4, "{clip}: {worst}");
        // Blocks of any number of whole frames give the same probabilities
        // (to rounding: products of other row counts sum in other orders).
        let mut classifier = SileroClassifier::new(model.clone()).unwrap();
        let mut streamed = Vec::new();
        let mut at = 0;
        while at < whole {
            let n = ((1 + lcg(&mut seed) % 40) * FRAME).min(whole - at);
            streamed.extend(classifier.classify(&samples[at..at + n]).unwrap());
            at += n;
        }
        assert_eq!(streamed.len(), whole / FRAME);
        for (a, b) in streamed.iter().zip(&ours) {
            assert!((a - b).abs() < 1e-5, "{clip}: {a} vs {b}");
        }
    }
}

#[test]
fn rules_on_the_reference_probabilities_give_faster_whispers_segments() {
    let Some(clips) = clips() else { return };
    let mut seed = 11;
    for (clip, samples) in &clips {
        for set in SETS {
            let expected = segments(clip, set);
            let whole = run(replay_stage(clip, set), std::slice::from_ref(samples));
            assert_eq!(whole, expected, "{clip} {set}");
            for max in [1, 700, 20_000] {
                let streamed = run(replay_stage(clip, set), &blocks(samples, max, &mut seed));
                assert_eq!(streamed, expected, "{clip} {set} blocks ≤ {max}");
            }
        }
    }
}

#[test]
fn silero_on_mlx_gives_faster_whispers_segments_streaming() {
    let Some(clips) = clips() else { return };
    let model = model();
    let mut seed = 5;
    for (clip, samples) in &clips {
        for set in SETS {
            let expected = segments(clip, set);
            let settings = SileroSettings::from_options(&options(set));
            let stage = || settings.stage_with(model.clone()).unwrap();
            assert_eq!(
                run(stage(), std::slice::from_ref(samples)),
                expected,
                "{clip} {set}"
            );
            // Speech handed out by the block adapter in odd block sizes.
            let mut speech = SpeechBlocks::with_stage(
                blocks(samples, 9_000, &mut seed)
                    .into_iter()
                    .map(Ok::<_, ()>),
                stage(),
            );
            let gathered: Vec<f32> = speech.by_ref().flat_map(Result::unwrap).collect();
            let timeline = speech.into_timeline().unwrap();
            assert_eq!(timeline.regions(), &expected[..], "{clip} {set}");
            assert_eq!(gathered, timeline.gather(samples));
        }
        eprintln!("{clip}: {:?}", segments(clip, "default"));
    }
}

#[test]
fn silero_is_the_default_detector() {
    let Some(clips) = clips() else { return };
    let (_, jfk) = &clips[0];
    let regions = detect_speech(jfk, &VadOptions::default()).unwrap();
    // faster-whisper's defaults but regions of at most 30 s: jfk is one.
    assert_eq!(regions, segments("jfk", "default"));
    let mut silence = vec![0.0f32; 16_000 * 20];
    silence.extend(lcg_noise(16_000, 0.001, 9));
    assert!(detect_speech(&silence, &VadOptions::default())
        .unwrap()
        .is_empty());
}

#[test]
fn bad_weights_are_a_clear_error() {
    let dir = asr_converters::silero::fetch_silero_vad().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    std::fs::write(tmp.path().join("weights.safetensors"), b"not safetensors").unwrap();
    let err = SileroModel::load(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("weights.safetensors"), "{err}");

    // A weight missing: named.
    let mut tensors = mlx::io::load_safetensors(dir.join("weights.safetensors"))
        .unwrap()
        .tensors;
    tensors.remove("encoder.2.weight");
    mlx::io::save_safetensors(
        tmp.path().join("weights.safetensors"),
        &tensors,
        &Default::default(),
    )
    .unwrap();
    let err = SileroModel::load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("weights.safetensors") && err.contains("encoder.2.weight"),
        "{err}"
    );

    // A file that is not the ONNX model: the converter names it.
    let bogus = tmp.path().join("model.onnx");
    std::fs::write(&bogus, b"\x08\x07\x12\x03abc").unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let err = asr_converters::silero::convert_silero(&bogus, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.onnx") && err.contains("graph"), "{err}");
}
