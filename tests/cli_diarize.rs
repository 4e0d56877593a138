//! `pipeline diarize`: speaker turns of real recordings with the registry's
//! weights, as RTTM on stdout or files, and the errors users meet.

use std::path::Path;
use std::process::Command;

fn pipeline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("pipeline binary runs")
}

const SAMPLE: &str = "../shared/data/diarization/sample.wav";

#[test]
fn rttm_goes_to_stdout_or_into_files_and_a_bad_file_does_not_stop_the_others() {
    if !Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE).is_file() {
        eprintln!("skipped: {SAMPLE} is absent");
        return;
    }
    let out = pipeline(&["diarize", SAMPLE, "--num-speakers", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut speakers: Vec<&str> = stdout
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(
                (fields[0], fields[1], fields.len()),
                ("SPEAKER", "sample", 10),
                "{l}"
            );
            fields[7]
        })
        .collect();
    speakers.sort_unstable();
    speakers.dedup();
    assert_eq!(speakers, ["SPEAKER_00", "SPEAKER_01"]);

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.wav");
    std::fs::write(&broken, b"RIFF, but not really").unwrap();
    let out_dir = dir.path().join("out");
    let out = pipeline(&[
        "diarize",
        SAMPLE,
        broken.to_str().unwrap(),
        "--output-dir",
        out_dir.to_str().unwrap(),
        "--format",
        "rttm",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.wav") && stderr.contains("1 of 2 files failed"),
        "{stderr}"
    );
    let rttm = std::fs::read_to_string(out_dir.join("sample.rttm")).unwrap();
    assert_eq!(rttm, stdout, "the files hold what stdout showed");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("sample.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["speakers"].as_array().unwrap().len(),
        rttm.lines().count()
    );
    assert!(!out_dir.join("broken.rttm").exists());
}

#[test]
fn settings_that_cannot_work_are_refused_before_any_model_loads() {
    let out = pipeline(&[
        "diarize",
        SAMPLE,
        "--min-speakers",
        "3",
        "--max-speakers",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("diarization.min_speakers"), "{stderr}");
    let out = pipeline(&["diarize", "no-such-file.wav"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no-such-file.wav"),
        "{stderr}"
    );
}
