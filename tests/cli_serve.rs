//! `pipeline serve` as its users meet it: OpenAI's Python client, every
//! response format against the CLI's own outputs, bad uploads, the queue's
//! limits, timeouts, the API key, batching, clients that leave, SIGTERM,
//! and the web page in a real browser.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

const JFK: &str = "examples/audio/jfk.wav";
const JFK_TEXT: &str = "And so my fellow Americans ask not what your country can do for you ask what you can do for your country";
const TINY: &str = "model = \"tiny.en\"\n";

fn pipeline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pipeline"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A `pipeline serve` process on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(config: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut child = pipeline()
            .args(["serve", path.to_str().unwrap(), "--port", "0"])
            .args(args)
            .env_remove("MLX_ASR_API_KEY")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.wait();
            panic!(
                "the server did not start: {line:?}\n{}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap()
            );
        };
        Server {
            url: url.to_string(),
            child,
            dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap()
    }

    fn get(&self, path: &str) -> Response {
        client().get(format!("{}{path}", self.url)).send().unwrap()
    }

    fn transcribe(&self, form: Form) -> Response {
        self.post("/v1/audio/transcriptions", form)
    }

    fn post(&self, path: &str, form: Form) -> Response {
        client()
            .post(format!("{}{path}", self.url))
            .multipart(form)
            .send()
            .unwrap()
    }

    /// A metric's value (summed over its label sets).
    fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text().unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn file_part(path: &Path) -> Part {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    Part::bytes(std::fs::read(path).unwrap()).file_name(name)
}

fn jfk_form() -> Form {
    Form::new().part("file", file_part(&repo(JFK)))
}

fn json(response: Response) -> Value {
    let status = response.status();
    let text = response.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {text:?}: {e}"))
}

/// jfk.wav said `times` times in a row, as a WAV file in `dir`.
fn jfk_repeated(dir: &Path, times: usize) -> PathBuf {
    let mut reader = hound::WavReader::open(repo(JFK)).unwrap();
    let spec = reader.spec();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let path = dir.join(format!("jfk-x{times}.wav"));
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for _ in 0..times {
        for &s in &samples {
            writer.write_sample(s).unwrap();
        }
    }
    writer.finalize().unwrap();
    path
}

/// `pipeline run` on `input` with the server's config, writing `formats`;
/// the outputs by extension.
fn cli_outputs(config: &str, input: &Path, formats: &[&str]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    let formats: Vec<String> = formats.iter().map(|f| format!("{f:?}")).collect();
    std::fs::write(
        &path,
        format!(
            "input = {input:?}\noutput_dir = {:?}\nformats = [{}]\n{config}",
            dir.path().join("out"),
            formats.join(", ")
        ),
    )
    .unwrap();
    let out = pipeline()
        .args(["run", path.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stem = input.file_stem().unwrap().to_string_lossy();
    formats
        .iter()
        .map(|f| {
            let ext = f.trim_matches('"').to_string();
            let text = std::fs::read_to_string(dir.path().join(format!("out/{stem}.{ext}")));
            (ext, text.unwrap())
        })
        .collect()
}

/// python3 that imports the official `openai` client: the one installed,
/// else one installed from PyPI into the cache on first use.
fn python_with_openai() -> Command {
    let has_openai = |pythonpath: Option<&Path>| {
        let mut python = Command::new("python3");
        if let Some(p) = pythonpath {
            python.env("PYTHONPATH", p);
        }
        python
            .args(["-c", "import openai"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_openai(None) {
        return Command::new("python3");
    }
    let cache = std::env::var_os("MLX_ASR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/mlx-asr"));
    let target = cache.join("python-openai-2");
    if !has_openai(Some(&target)) {
        let installed = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-warn-conflicts",
            ])
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .arg("--target")
            .arg(&target)
            .arg("openai>=2,<3")
            .status()
            .unwrap();
        assert!(installed.success(), "pip could not install openai");
    }
    let mut python = Command::new("python3");
    python.env("PYTHONPATH", &target);
    python
}

#[test]
fn the_openai_python_client_gets_the_cli_text() {
    let config = TINY;
    let server = Server::start(config, &[]);
    let script = r#"
import json, sys
from openai import OpenAI, BadRequestError
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
with open(sys.argv[2], "rb") as f:
    plain = client.audio.transcriptions.create(model="whisper-1", file=f)
with open(sys.argv[2], "rb") as f:
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=f, response_format="verbose_json",
        timestamp_granularities=["word", "segment"])
with open(sys.argv[2], "rb") as f:
    translated = client.audio.translations.create(model="whisper-1", file=f)
models = [m.id for m in client.models.list()]
try:
    client.audio.transcriptions.create(model="whisper-1", file=("notes.txt", b"not audio"))
    refused = None
except BadRequestError as e:
    refused = e.body
print(json.dumps({
    "text": plain.text, "language": verbose.language, "duration": verbose.duration,
    "segments": len(verbose.segments), "words": [w.word for w in verbose.words],
    "first_word_start": verbose.words[0].start, "translated": translated.text,
    "models": models, "refused": refused,
}))
"#;
    let out = python_with_openai()
        .args(["-c", script, &server.url])
        .arg(repo(JFK))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli = cli_outputs(config, &repo(JFK), &["txt"]);
    assert_eq!(seen["text"], cli[0].1.trim());
    assert_eq!(seen["text"], JFK_TEXT);
    assert_eq!(seen["language"], "english");
    assert_eq!(seen["duration"], 11.0);
    let words: Vec<&str> = seen["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(words.join(" "), JFK_TEXT);
    assert!(seen["first_word_start"].as_f64().unwrap() < 1.0);
    assert_eq!(seen["translated"], JFK_TEXT);
    assert_eq!(seen["models"], serde_json::json!(["tiny.en"]));
    // The client's exception carries the error object.
    let refused = &seen["refused"];
    assert_eq!(refused["param"], "file");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("notes.txt: unsupported or unrecognized audio format"),
        "{refused}"
    );
}

#[test]
fn every_response_format_is_the_cli_output() {
    let config = format!("{TINY}[decode]\nword_timestamps = true\n");
    let server = Server::start(&config, &[]);
    let cli = cli_outputs(&config, &repo(JFK), &["txt", "srt", "vtt"]);
    for (format, expected) in &cli {
        let format = if format == "txt" { "text" } else { format };
        let response = server.transcribe(jfk_form().text("response_format", format.to_string()));
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(&response.text().unwrap(), expected, "{format}");
    }
    let verbose = json(
        server.transcribe(
            jfk_form()
                .text("response_format", "verbose_json")
                .text("timestamp_granularities[]", "word"),
        ),
    );
    assert_eq!(verbose["task"], "transcribe");
    assert_eq!(verbose["text"], JFK_TEXT);
    assert_eq!(verbose["usage"]["seconds"], 11);
    let segments = verbose["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    for key in [
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
    ] {
        assert!(segments[0].get(key).is_some(), "segments lack {key}");
    }
    let words = verbose["words"].as_array().unwrap();
    assert_eq!(words.len(), JFK_TEXT.split(' ').count());
    let times: Vec<f64> = words
        .iter()
        .flat_map(|w| [w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap()])
        .collect();
    assert!(times.windows(2).all(|t| t[0] <= t[1]), "{times:?}");

    // Progress as server-sent events, ending in every output format.
    let events = server
        .transcribe(
            jfk_form()
                .text("stream", "true")
                .text("response_format", "verbose_json")
                .text("timestamp_granularities[]", "word"),
        )
        .text()
        .unwrap();
    let events: Vec<Value> = events
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"transcript.queued"), "{kinds:?}");
    assert!(kinds.contains(&"transcript.progress"), "{kinds:?}");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "transcript.text.done");
    assert_eq!(done["text"], JFK_TEXT);
    assert_eq!(done["outputs"]["srt"], cli[1].1);
    assert_eq!(done["words"].as_array().unwrap().len(), words.len());
}

/// Each bad request gets its status and a message naming the problem, and
/// the server goes on serving.
#[test]
fn bad_requests_get_a_4xx_with_the_reason() {
    let server = Server::start(
        &format!(
            "{TINY}[serve]\nmax_upload_mb = 1\nmax_audio_seconds = 20\nmax_queued_audio = 20\n"
        ),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let jfk = std::fs::read(repo(JFK)).unwrap();
    let named = |name: &str, bytes: Vec<u8>| Part::bytes(bytes).file_name(name.to_string());
    let long = jfk_repeated(dir.path(), 2);
    let cases: Vec<(&str, Form, u16, &str, &str)> = vec![
        (
            "not audio",
            Form::new().part("file", named("notes.txt", b"hello, world".to_vec())),
            400,
            "file",
            "notes.txt: unsupported or unrecognized audio format",
        ),
        (
            "truncated",
            Form::new().part("file", named("cut.wav", jfk[..jfk.len() / 3].to_vec())),
            400,
            "file",
            "cut.wav: truncated: the audio ends at 3.7 s of the 11.0 s its header states",
        ),
        (
            "empty",
            Form::new().part("file", named("empty.wav", Vec::new())),
            400,
            "file",
            "empty.wav: the uploaded file is empty",
        ),
        (
            "a misspelt field",
            jfk_form().text("langauge", "en"),
            400,
            "langauge",
            "unknown field \"langauge\": /v1/audio/transcriptions takes file, model",
        ),
        (
            "no file",
            Form::new().text("model", "whisper-1"),
            400,
            "file",
            "no audio: the form needs a `file` field",
        ),
        (
            "too large",
            Form::new().part("file", named("big.wav", vec![0; 1_500_000])),
            413,
            "file",
            "the upload is over this server's limit",
        ),
        (
            "too long",
            Form::new().part("file", file_part(&long)),
            400,
            "file",
            "jfk-x2.wav: 22 s of audio or more, over this server's limit of 20 s",
        ),
        (
            "an unknown format",
            jfk_form().text("response_format", "docx"),
            400,
            "response_format",
            "response_format \"docx\": one of json, text, srt, verbose_json, vtt",
        ),
        (
            "a temperature out of range",
            jfk_form().text("temperature", "3"),
            400,
            "temperature",
            "temperature \"3\": a number between 0 and 1",
        ),
        (
            "words without verbose_json",
            jfk_form().text("timestamp_granularities[]", "word"),
            400,
            "timestamp_granularities",
            "timestamp_granularities[] needs response_format verbose_json",
        ),
        (
            "an unknown model",
            jfk_form().text("model", "whisper-9"),
            404,
            "model",
            "the model \"whisper-9\" is not served here",
        ),
    ];
    for (case, form, status, param, message) in cases {
        let response = server.transcribe(form);
        assert_eq!(response.status().as_u16(), status, "{case}");
        let body = json(response);
        let error = &body["error"];
        assert_eq!(error["param"], param, "{case}: {body}");
        assert!(
            error["message"].as_str().unwrap().starts_with(message),
            "{case}: {body}"
        );
        assert!(
            error["type"].is_string() && error.get("code").is_some(),
            "{case}"
        );
    }
    let language = json(server.transcribe(jfk_form().text("language", "xx")));
    assert!(
        language["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"xx\" is not one of the model's languages"),
        "{language}"
    );
    let not_a_form = client()
        .post(format!("{}/v1/audio/transcriptions", server.url))
        .json(&serde_json::json!({"file": "jfk.wav"}))
        .send()
        .unwrap();
    assert_eq!(not_a_form.status(), 400);
    assert_eq!(server.get("/v1/nothing").status(), 404);
    // Still serving.
    assert_eq!(json(server.transcribe(jfk_form()))["text"], JFK_TEXT);
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let server = Server::start(&format!("{TINY}[serve]\nmax_queued = 1\n"), &[]);
    let dir = tempfile::tempdir().unwrap();
    let long = jfk_repeated(dir.path(), 6);
    // The model is busy with a minute of speech while six requests arrive:
    // one waits, the others are turned away.
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| server.transcribe(Form::new().part("file", file_part(&long))));
        let started = Instant::now();
        while server.metric("mlx_asr_running") < 1.0 {
            assert!(started.elapsed() < Duration::from_secs(60), "never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let answers: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| server.transcribe(jfk_form())))
            .collect();
        let mut statuses = Vec::new();
        for answer in answers {
            let response = answer.join().unwrap();
            let status = response.status().as_u16();
            if status == 429 {
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                let body = json(response);
                assert_eq!(body["error"]["code"], "queue_full", "{body}");
            } else {
                assert_eq!(json(response)["text"], JFK_TEXT);
            }
            statuses.push(status);
        }
        statuses.sort();
        assert_eq!(statuses, [200, 429, 429, 429, 429, 429]);
        assert_eq!(busy.join().unwrap().status(), 200);
    });
}

#[test]
fn a_request_over_its_time_gets_504() {
    let server = Server::start(&format!("{TINY}[serve]\ntimeout_seconds = 0.001\n"), &[]);
    let response = server.transcribe(jfk_form());
    assert_eq!(response.status(), 504);
    let body = json(response);
    assert_eq!(body["error"]["code"], "timeout");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("serve.timeout_seconds"));
}

#[test]
fn an_api_key_guards_the_api_and_is_required_off_loopback() {
    let server = Server::start(TINY, &["--api-key", "sesame"]);
    let models = format!("{}/v1/models", server.url);
    let without = client().get(&models).send().unwrap();
    assert_eq!(without.status(), 401);
    assert_eq!(json(without)["error"]["code"], "invalid_api_key");
    let wrong = client().get(&models).bearer_auth("open").send().unwrap();
    assert_eq!(wrong.status(), 401);
    let with = client().get(&models).bearer_auth("sesame").send().unwrap();
    assert_eq!(json(with)["data"][0]["id"], "tiny.en");
    assert_eq!(server.get("/health").status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = pipeline()
        .args([
            "serve",
            config.to_str().unwrap(),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ])
        .env_remove("MLX_ASR_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is reachable from other machines: set an API key"),
        "{stderr}"
    );
}

/// Concurrent requests are transcribed together, each with the text it
/// gets alone.
#[test]
fn concurrent_requests_are_batched_with_their_results_alone() {
    let server = Server::start(TINY, &[]);
    let librispeech = "../shared/data/librispeech/LibriSpeech/test-clean/1089";
    let mut files = vec![repo(JFK)];
    for clip in [
        "134686/1089-134686-0000",
        "134686/1089-134686-0001",
        "134691/1089-134691-0000",
        "134691/1089-134691-0001",
    ] {
        files.push(repo(&format!("{librispeech}/{clip}.flac")));
    }
    let alone: Vec<String> = files
        .iter()
        .map(|f| {
            json(server.transcribe(Form::new().part("file", file_part(f))))["text"].to_string()
        })
        .collect();
    let batches_before = server.metric("mlx_asr_batch_size_count");
    // Held back until the model is busy, so that they queue together.
    let dir = tempfile::tempdir().unwrap();
    let long = jfk_repeated(dir.path(), 3);
    let together: Vec<String> = std::thread::scope(|scope| {
        let busy = scope.spawn(|| server.transcribe(Form::new().part("file", file_part(&long))));
        while server.metric("mlx_asr_running") < 1.0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let answers: Vec<_> = files
            .iter()
            .map(|f| scope.spawn(|| server.transcribe(Form::new().part("file", file_part(f)))))
            .collect();
        assert_eq!(busy.join().unwrap().status(), 200);
        answers
            .into_iter()
            .map(|a| json(a.join().unwrap())["text"].to_string())
            .collect()
    });
    assert_eq!(together, alone);
    let batches = server.metric("mlx_asr_batch_size_count") - batches_before;
    assert!(
        batches < files.len() as f64 + 1.0,
        "{} requests in {batches} batches",
        files.len() + 1
    );
}

/// A client that leaves while its request waits never reaches the model.
#[test]
fn a_client_that_leaves_frees_its_place() {
    let server = Server::start(TINY, &[]);
    let dir = tempfile::tempdir().unwrap();
    let long = jfk_repeated(dir.path(), 4);
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| server.transcribe(Form::new().part("file", file_part(&long))));
        while server.metric("mlx_asr_running") < 1.0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A whole request, then the connection closed without reading.
        let body = std::fs::read(repo(JFK)).unwrap();
        let boundary = "leaving";
        let mut form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"jfk.wav\"\r\n\r\n"
        )
        .into_bytes();
        form.extend(body);
        form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
        let address = server.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {}\r\n\r\n",
            form.len()
        )
        .unwrap();
        stream.write_all(&form).unwrap();
        let started = Instant::now();
        while server.metric("mlx_asr_queue_depth") < 1.0 {
            assert!(started.elapsed() < Duration::from_secs(30), "never queued");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(stream);
        let started = Instant::now();
        while server.metric("mlx_asr_abandoned_total") < 1.0 {
            assert!(started.elapsed() < Duration::from_secs(30), "never dropped");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(server.metric("mlx_asr_queue_depth"), 0.0);
        assert_eq!(busy.join().unwrap().status(), 200);
    });
    // The long request was the only batch after it.
    assert_eq!(server.metric("mlx_asr_batch_size_count"), 1.0);
}

#[test]
fn sigterm_finishes_the_requests_received() {
    let mut server = Server::start(TINY, &[]);
    let dir = tempfile::tempdir().unwrap();
    let long = jfk_repeated(dir.path(), 3);
    let answer = {
        let (url, long) = (server.url.clone(), long.clone());
        std::thread::spawn(move || {
            client()
                .post(format!("{url}/v1/audio/transcriptions"))
                .multipart(Form::new().part("file", file_part(&long)))
                .send()
                .map(|r| (r.status().as_u16(), r.text().unwrap()))
        })
    };
    while server.metric("mlx_asr_running") < 1.0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let (status, text) = answer.join().unwrap().unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("ask what you can do for your country"),
        "{text}"
    );
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}\n{}", server.stderr());
    let address = server.url.trim_start_matches("http://");
    assert!(TcpStream::connect(address).is_err(), "still listening");
}

/// The page at `/` in Debian's Chromium, driven by Playwright: jfk.wav
/// uploaded, its words shown, a click on a word moves the player there.
#[test]
fn the_web_page_transcribes_and_seeks_in_a_browser() {
    let server = Server::start(&format!("{TINY}[decode]\nword_timestamps = true\n"), &[]);
    let page = server.get("/").text().unwrap();
    assert!(page.contains("<html"), "{page:.200}");
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "the browser test needs Debian's chromium (apt-get install chromium; .ci/run does)"
    );
    let web = repo("server/tests/web");
    if !web.join("node_modules/playwright-core").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&web)
            .status()
            .unwrap();
        assert!(installed.success(), "npm ci in {}", web.display());
    }
    let out = Command::new("node")
        .arg("page.test.mjs")
        .arg(&server.url)
        .arg(repo(JFK))
        .arg("ask not what your country can do for you")
        .current_dir(&web)
        .output()
        .unwrap();
    let mut report = String::new();
    let _ = out.stdout.as_slice().read_to_string(&mut report);
    assert!(
        out.status.success(),
        "{report}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
}

/// The curl lines of the README's server section, run as written against
/// `pipeline serve examples/serve.toml` (on a free port).
#[test]
fn the_readme_curl_examples_work_as_written() {
    let config = std::fs::read_to_string(repo("examples/serve.toml")).unwrap();
    let server = Server::start(&config, &[]);
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Server (`pipeline serve`)"))
        .expect("the README has a server section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    assert!(block.starts_with("pipeline serve examples/serve.toml"));
    let commands: Vec<String> = block
        .replace("\\\n", " ")
        .lines()
        .filter(|l| l.starts_with("curl "))
        .map(|l| l.replace("localhost:8080", server.url.trim_start_matches("http://")))
        .collect();
    assert!(commands.len() >= 3, "{commands:?}");
    for command in commands {
        let out = Command::new("sh")
            .args(["-c", &command])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command}: {out:?}");
        assert!(
            stdout.contains("ask what you can do for your country")
                && !stdout.contains("\"error\""),
            "{command}: {stdout}"
        );
    }
}

#[test]
fn several_models_are_served_by_their_ids() {
    let server = Server::start(
        &format!("{TINY}[serve.models]\n\"tiny-again\" = \"tiny.en\"\n"),
        &[],
    );
    let models = json(server.get("/v1/models"));
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny.en", "tiny-again"]);
    for model in ["tiny.en", "tiny-again", "whisper-1"] {
        let answer = json(server.transcribe(jfk_form().text("model", model)));
        assert_eq!(answer["text"], JFK_TEXT, "{model}");
    }
    assert_eq!(
        json(server.get("/v1/models/tiny-again"))["id"],
        "tiny-again"
    );
    assert_eq!(server.get("/v1/models/tiny").status(), 404);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!("{TINY}[serve.models]\n\"tiny.en\" = \"base\"\n"),
    )
    .unwrap();
    let out = pipeline()
        .args(["serve", config.to_str().unwrap(), "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"tiny.en\" names the configuration's own model"),
        "{stderr}"
    );
}
