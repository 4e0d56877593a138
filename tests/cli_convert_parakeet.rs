//! `pipeline convert --family parakeet` as a user runs it, on the tiny
//! random checkpoints of converters/tests/fixtures/parakeet.

use std::path::Path;
use std::process::Command;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("converters/tests/fixtures/parakeet")
        .join(name)
        .display()
        .to_string()
}

fn convert(from: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(["convert", "--family", "parakeet", "--from", from, "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("pipeline binary runs")
}

#[test]
fn a_nemo_file_converts_quantized_and_a_bad_one_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q8");
    let run = convert(
        &fixture("tiny.nemo"),
        &out,
        &["--quantize", "q8", "--group-size", "32"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["quantization"],
        serde_json::json!({"group_size": 32, "bits": 8})
    );
    assert!(out.join("weights.safetensors").is_file());

    let bad = dir.path().join("bad.nemo");
    std::fs::write(&bad, "not a tar").unwrap();
    let run = convert(bad.to_str().unwrap(), &dir.path().join("bad"), &[]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(bad.to_str().unwrap()) && stderr.contains("not a .nemo archive"),
        "{stderr}"
    );
}
