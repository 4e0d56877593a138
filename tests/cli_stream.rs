//! `pipeline stream`: jfk.wav through standard input and through a file
//! paced at real time, stopped by Ctrl-C, with the events as JSON lines,
//! and the errors users meet.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const JFK: &str = "examples/audio/jfk.wav";
const JFK_TEXT: &str = "and so my fellow americans ask not what your country can do for you ask what you can do for your country";

fn pipeline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pipeline"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// The events of JSON lines.
fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn final_text(events: &[serde_json::Value]) -> String {
    let finals: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "final")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    finals
        .join(" ")
        .to_lowercase()
        .replace(|c: char| !c.is_alphanumeric() && c != ' ', "")
}

#[test]
fn a_wav_on_standard_input_streams_to_its_transcript() {
    let mut child = pipeline()
        .args([
            "stream",
            "examples/stream.toml",
            "--stdin",
            "--format",
            "jsonl",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wav = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(JFK)).unwrap();
    child.stdin.take().unwrap().write_all(&wav).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(final_text(&events), JFK_TEXT);
    let last = events.last().unwrap();
    assert!(last["type"] == "final" || last["text"] == "", "{last}");
    for e in &events {
        assert!(
            e["start"].as_f64().unwrap() <= e["end"].as_f64().unwrap(),
            "{e}"
        );
    }
}

#[test]
fn ctrl_c_makes_what_was_heard_final() {
    let mut child = pipeline()
        .args([
            "stream",
            "examples/stream.toml",
            "--input",
            JFK,
            "--realtime",
            "--format",
            "jsonl",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Stopped once "Americans" (said by 2.5 s) is final, well before the
    // recording's end at 11 s.
    let started = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let americans = line.contains("\"final\"") && line.contains("Americans");
        seen.push(line);
        if americans || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    seen.extend(lines.map(|l| l.unwrap()));
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events(&seen.join("\n"));
    let text = final_text(&events);
    assert!(text.starts_with("and so my fellow americans"), "{text}");
    assert!(
        !text.contains("for your country"),
        "heard to the end: {text}"
    );
    let last_end = events
        .iter()
        .map(|e| e["end"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(last_end < 10.0, "{last_end}");
}

#[test]
fn a_report_holds_the_latencies_and_a_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = pipeline()
        .args(["stream", "examples/stream.toml", "--input", JFK, "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A final a line; the hypotheses fall where this machine's speed puts
    // them (the simulated clock), so only the words that every run gets.
    let stdout = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let said: Vec<&str> = stdout.split_whitespace().collect();
    let said = said.join(" ");
    assert!(
        said.contains("americans") && said.ends_with("for your country"),
        "{said}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["audio_seconds"], 11.0);
    assert!(
        report["confirmed_words"].as_u64().unwrap() >= 20,
        "{report}"
    );
    for key in [
        "confirmed_latency_median",
        "confirmed_latency_p90",
        "first_text_latency",
        "real_time_factor",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }

    let missing = pipeline()
        .args(["stream", "examples/stream.toml", "--input", "no/such.wav"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no/such.wav"), "{stderr}");

    let mut garbage = pipeline()
        .args(["stream", "examples/stream.toml", "--stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    garbage
        .stdin
        .take()
        .unwrap()
        .write_all(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
        .unwrap();
    let out = garbage.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("standard input"), "{stderr}");
}
