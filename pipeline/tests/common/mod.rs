//! What the model-family tests share: jfk.wav, the problems a config is
//! refused with, and the stages a model's plan names.

use std::path::{Path, PathBuf};

use asr_pipeline::{Pipeline, Quantize};

/// Asserts that a config of `model` with `decode` as its `[decode]` table
/// is refused, each setting of `keys` named in the message.
#[allow(dead_code)]
pub fn assert_refused(model: &str, decode: &str, keys: &[&str]) {
    let toml = format!("model = {model:?}\n[decode]\n{decode}");
    let err = match Pipeline::from_toml(&toml, Path::new(".")) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{model} took settings it cannot honour:\n{decode}"),
    };
    for key in keys {
        assert!(err.contains(&format!("decode.{key}")), "{err}");
    }
}

/// The plan's stages for `model`, unquantized, a line each:
/// `name: implementation`.
#[allow(dead_code)]
pub fn stage_lines(model: &str) -> String {
    let pipeline = Pipeline::builder()
        .model(model)
        .quantize(Quantize::default())
        .build()
        .unwrap();
    let stages: Vec<String> = pipeline
        .stages()
        .stages
        .iter()
        .map(|s| format!("{}: {}", s.name, s.implementation))
        .collect();
    stages.join("\n")
}

/// examples/audio/jfk.wav.
#[allow(dead_code)]
pub fn jfk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/audio/jfk.wav")
}

/// jfk.wav's samples.
#[allow(dead_code)]
pub fn read_jfk() -> Vec<f32> {
    let bytes = std::fs::read(jfk()).unwrap();
    // 16-bit mono PCM after a 44-byte header.
    bytes[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect()
}
