//! The whole Parakeet model's speed at the real dimensions, for
//! docs/benchmarks.md: a random parakeet-tdt-0.6b-v2-sized folder
//! (`scripts/bench_parakeet_peer.py --make F`) on one WAV file, f32, q8
//! (linear layers 8-bit in groups of 64, as the peer harness quantizes
//! parakeet-mlx) and q8 with int8 activations. Set `PARAKEET_SPEED_FOLDER=F`
//! and `PARAKEET_SPEED_AUDIO=A`; the q8 folder is converted next to `F`
//! (`F-q8`) on the first run. Prints one JSON line per variant (best of
//! three runs by encoder + decoder time), phases in seconds, as the peer
//! harness does.

use std::path::{Path, PathBuf};

use asr_converters::out_folder::convert_into_folder;
use asr_converters::parakeet::convert_parakeet;
use asr_converters::whisper::WeightOptions;
use asr_models::parakeet::{Parakeet, PhaseTimes};
use asr_models::quantization::Quantization;
use asr_models::Activations;

fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels), (16000, 1), "16 kHz mono");
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

/// `folder` as a q8 folder beside it (converted from an mlx-community-style
/// view of it: its weights as `model.safetensors`).
fn q8_folder(folder: &Path) -> PathBuf {
    let out = folder.with_file_name(format!(
        "{}-q8",
        folder.file_name().unwrap().to_string_lossy()
    ));
    if out.join("weights.safetensors").exists() {
        return out;
    }
    let source = folder.with_file_name(format!(
        "{}-source",
        folder.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&source).unwrap();
    for (from, to) in [
        ("config.json", "config.json"),
        ("weights.safetensors", "model.safetensors"),
    ] {
        let link = source.join(to);
        if !link.exists() {
            std::os::unix::fs::symlink(folder.join(from).canonicalize().unwrap(), link).unwrap();
        }
    }
    let opts = WeightOptions {
        quantization: Some(Quantization {
            group_size: 64,
            bits: 8,
        }),
        ..WeightOptions::default()
    };
    convert_into_folder(&source, &out, false, |from, staged| {
        convert_parakeet(from, staged, &opts)
    })
    .unwrap();
    std::fs::remove_dir_all(&source).unwrap();
    out
}

fn bench(name: &str, folder: &Path, activations: Activations, samples: &[f32]) {
    let model = Parakeet::load_with(folder, activations).unwrap();
    let mut best: Option<(PhaseTimes, usize)> = None;
    for _ in 0..3 {
        let recognized = model.transcribe_samples(samples).unwrap();
        let t = recognized.times;
        if best
            .as_ref()
            .is_none_or(|(b, _)| t.encoder + t.decoder < b.encoder + b.decoder)
        {
            best = Some((t, recognized.tokens));
        }
    }
    let (t, tokens) = best.unwrap();
    let audio = samples.len() as f64 / 16000.0;
    println!(
        "{{\"variant\": \"{name}\", \"mel_s\": {:.4}, \"encoder_s\": {:.4}, \"decoder_s\": {:.4}, \
         \"tokens\": {tokens}, \"audio_s\": {audio:.3}}}",
        t.mel, t.encoder, t.decoder
    );
}

#[test]
#[ignore]
fn real_dimensions_speed() {
    let (Some(folder), Some(audio)) = (
        std::env::var_os("PARAKEET_SPEED_FOLDER").map(PathBuf::from),
        std::env::var_os("PARAKEET_SPEED_AUDIO").map(PathBuf::from),
    ) else {
        eprintln!("skipped: set PARAKEET_SPEED_FOLDER and PARAKEET_SPEED_AUDIO");
        return;
    };
    let samples = read_wav(&audio);
    let variants = std::env::var("PARAKEET_SPEED_VARIANTS").unwrap_or("f32,q8,int8".into());
    for variant in variants.split(',') {
        match variant {
            "f32" => bench("f32", &folder, Activations::F32, &samples),
            "q8" => bench("q8", &q8_folder(&folder), Activations::F32, &samples),
            "int8" => bench("int8", &q8_folder(&folder), Activations::Int8, &samples),
            other => panic!("unknown variant {other}"),
        }
    }
}
