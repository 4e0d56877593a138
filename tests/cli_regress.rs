//! `pipeline regress`: the exit status says whether anything needs
//! attention, `--accept` clears it, failures are reported per item.

use std::process::Command;

fn pipeline(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("pipeline binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn regress_reports_items_and_exits_non_zero_until_accepted() {
    let (ok, stdout, stderr) = pipeline(&["-q", "regress", "examples/regress.toml"]);
    if !ok && stderr.contains("loading model") {
        eprintln!("skipped: the model could not be loaded: {stderr}");
        return;
    }
    assert!(ok, "the example matches its snapshot: {stdout}{stderr}");
    assert!(stdout.starts_with("same     jfk"), "{stdout}");
    assert!(stdout.contains("WER vs references"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let jfk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio/jfk.wav");
    let manifest = dir.path().join("set.toml");
    std::fs::write(
        &manifest,
        format!(
            "model = \"tiny.en\"\naudio = [{:?}, \"missing.wav\"]\n",
            jfk.display()
        ),
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();
    let (ok, stdout, stderr) = pipeline(&["-q", "regress", manifest]);
    assert!(!ok, "new snapshot and a failure: {stdout}");
    assert!(stdout.contains("new      jfk"), "{stdout}");
    assert!(
        stdout.contains("failed   missing") && stdout.contains("no such audio file"),
        "{stdout}"
    );
    assert!(stderr.contains("1 new, 1 failed of 2 items"), "{stderr}");
    assert!(!dir.path().join("snapshots").exists(), "nothing written");

    let (ok, stdout, stderr) = pipeline(&["-q", "regress", manifest, "--accept"]);
    assert!(!ok, "a failure cannot be accepted: {stdout}");
    assert!(stderr.contains("1 of 2 items failed"), "{stderr}");
    assert!(dir.path().join("snapshots/jfk.snap").is_file());

    std::fs::write(
        dir.path().join("set.toml"),
        format!("model = \"tiny.en\"\naudio = {:?}\n", jfk.display()),
    )
    .unwrap();
    let (ok, stdout, _) = pipeline(&["-q", "regress", manifest]);
    assert!(ok, "accepted snapshot matches: {stdout}");
}
