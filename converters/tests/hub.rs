//! Hugging Face Hub models without the network: a fake hub cache (blobs,
//! snapshot symlinks, refs) in a tempdir holding the random tiny Whisper
//! fixtures, resolved offline; and downloads of only the missing files from
//! a fake Hub endpoint on 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use asr_converters::hub::{resolve, whisper_files, HubOptions, HubSpec};
use asr_converters::whisper::{convert_whisper, OutputDtype, WriteOptions};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
const REPO: &str = "test-org/whisper-tiny-random";

fn fixture(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-whisper")
        .join(dir)
}

/// A tokenizer.json stand-in: conversion only copies it.
fn tokenizer_stub(root: &Path) -> PathBuf {
    let path = root.join("tokenizer.json");
    std::fs::write(&path, r#"{"stub": true}"#).unwrap();
    path
}

/// Adds `files` (name, source) as snapshot `commit` of `repo` the way
/// huggingface_hub lays it out: content in blobs/, symlinks in snapshots/.
fn add_snapshot(cache: &Path, repo: &str, commit: &str, files: &[(String, PathBuf)]) {
    let repo_dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    let blobs = repo_dir.join("blobs");
    let snapshot = repo_dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    for (name, source) in files {
        let etag = format!("{commit}-{}", name.replace('.', "_"));
        std::fs::copy(source, blobs.join(&etag)).unwrap();
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&etag), snapshot.join(name))
            .unwrap();
    }
}

fn set_ref(cache: &Path, repo: &str, name: &str, commit: &str) {
    let refs = cache
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("refs")
        .join(name);
    std::fs::create_dir_all(refs.parent().unwrap()).unwrap();
    std::fs::write(refs, commit).unwrap();
}

/// Every file of fixture folder `dir`, plus the tokenizer stub.
fn fixture_files(dir: &str, tokenizer: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(fixture(dir))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    files.push(("tokenizer.json".into(), tokenizer.to_path_buf()));
    files.sort();
    files
}

fn offline(cache: &Path) -> HubOptions {
    HubOptions {
        cache: cache.to_path_buf(),
        offline: true,
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        progress: false,
    }
}

fn opts_f32() -> WriteOptions {
    WriteOptions {
        dtype: OutputDtype::F32,
        quantization: None,
        force: false,
    }
}

#[test]
fn offline_resolution_finds_the_snapshot_of_main_and_it_converts() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let tok = tokenizer_stub(root.path());
    add_snapshot(&cache, REPO, SHA_A, &fixture_files("hf-safetensors", &tok));
    set_ref(&cache, REPO, "main", SHA_A);

    let spec = HubSpec::parse(REPO).unwrap();
    let snap = resolve(&spec, &offline(&cache), whisper_files).unwrap();
    assert_eq!(snap.commit, SHA_A);
    assert_eq!(
        snap.dir,
        cache
            .join("models--test-org--whisper-tiny-random/snapshots")
            .join(SHA_A)
    );
    assert_eq!(
        snap.files,
        [
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "generation_config.json"
        ]
    );
    assert_eq!(
        snap.cache_key(),
        "hf-test-org--whisper-tiny-random-aaaaaaaaaaaa"
    );

    let out = root.path().join("mlx");
    let loaded = convert_whisper(&snap.dir, &out, &opts_f32(), &|_, _| {}).unwrap();
    assert!(loaded.weights.alignment_heads.is_some());
    assert!(out.join("weights.safetensors").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        r#"{"stub": true}"#
    );
}

#[test]
fn a_missing_file_is_an_error_naming_repo_file_and_place() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let tok = tokenizer_stub(root.path());
    let files: Vec<_> = fixture_files("hf-safetensors", &tok)
        .into_iter()
        .filter(|(name, _)| name != "tokenizer.json")
        .collect();
    add_snapshot(&cache, REPO, SHA_A, &files);
    set_ref(&cache, REPO, "main", SHA_A);

    let err = resolve(
        &HubSpec::parse(REPO).unwrap(),
        &offline(&cache),
        whisper_files,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("test-org/whisper-tiny-random@main"), "{err}");
    assert!(err.contains("missing tokenizer.json"), "{err}");
    assert!(err.contains(&format!("snapshots/{SHA_A}")), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");

    // A blob gone from under its symlink counts as missing too.
    let blob = cache
        .join("models--test-org--whisper-tiny-random/blobs")
        .join(format!("{SHA_A}-model_safetensors"));
    std::fs::remove_file(blob).unwrap();
    let err = resolve(
        &HubSpec::parse(REPO).unwrap(),
        &offline(&cache),
        whisper_files,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no weights"), "{err}");

    // A repo the cache has never seen, and a revision it does not know.
    let err = resolve(
        &HubSpec::parse("other/repo").unwrap(),
        &offline(&cache),
        whisper_files,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("other/repo@main: not in the cache"), "{err}");
    assert!(err.contains(&cache.display().to_string()), "{err}");
    let err = resolve(
        &HubSpec::parse(&format!("{REPO}@v9")).unwrap(),
        &offline(&cache),
        whisper_files,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("revision v9 is not in the cache"), "{err}");
}

#[test]
fn revisions_resolve_through_refs_or_as_commit_shas() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let tok = tokenizer_stub(root.path());
    add_snapshot(&cache, REPO, SHA_A, &fixture_files("hf-safetensors", &tok));
    add_snapshot(&cache, REPO, SHA_B, &fixture_files("ct2-float16", &tok));
    set_ref(&cache, REPO, "main", SHA_A);
    set_ref(&cache, REPO, "v2", SHA_B);
    set_ref(&cache, REPO, "refs/pr/1", SHA_B);

    let at = |rev: &str| {
        resolve(
            &HubSpec::parse(&format!("hf:{REPO}@{rev}")).unwrap(),
            &offline(&cache),
            whisper_files,
        )
    };
    let v2 = at("v2").unwrap();
    assert_eq!(v2.commit, SHA_B);
    assert_eq!(
        v2.files,
        [
            "config.json",
            "tokenizer.json",
            "model.bin",
            "vocabulary.json"
        ]
    );
    assert_eq!(at("refs/pr/1").unwrap().commit, SHA_B);
    let by_sha = at(SHA_A).unwrap();
    assert_eq!(by_sha.commit, SHA_A);
    assert!(by_sha.files.contains(&"model.safetensors".to_string()));
    assert_ne!(v2.cache_key(), by_sha.cache_key());

    // The CT2 snapshot converts as well.
    let out = root.path().join("mlx");
    convert_whisper(&v2.dir, &out, &opts_f32(), &|_, _| {}).unwrap();
    assert!(out.join("vocabulary.json").is_file());
}

#[test]
fn sharded_snapshots_need_every_shard() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let tok = tokenizer_stub(root.path());
    let files: Vec<_> = fixture_files("hf-sharded", &tok)
        .into_iter()
        .filter(|(name, _)| name != "model-00003-of-00008.safetensors")
        .collect();
    add_snapshot(&cache, REPO, SHA_A, &files);
    set_ref(&cache, REPO, "main", SHA_A);
    let err = resolve(
        &HubSpec::parse(REPO).unwrap(),
        &offline(&cache),
        whisper_files,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("missing model-00003-of-00008.safetensors"),
        "{err}"
    );

    add_snapshot(&cache, REPO, SHA_B, &fixture_files("hf-sharded", &tok));
    set_ref(&cache, REPO, "main", SHA_B);
    let snap = resolve(
        &HubSpec::parse(REPO).unwrap(),
        &offline(&cache),
        whisper_files,
    )
    .unwrap();
    assert_eq!(snap.files.len(), 4 + 8, "{:?}", snap.files);
    let out = root.path().join("mlx");
    convert_whisper(&snap.dir, &out, &opts_f32(), &|_, _| {}).unwrap();
}

/// A Hub endpoint serving one repo at one commit: the revision API and
/// ranged `resolve` downloads with the headers hf-hub reads.
struct FakeHub {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn fake_hub(files: BTreeMap<String, Vec<u8>>) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    }
                }
            }
            log.lock().unwrap().push(path.clone());
            let api = format!("/api/models/{REPO}/revision/");
            let resolve = format!("/{REPO}/resolve/{SHA_A}/");
            let (status, headers, body): (&str, Vec<String>, Vec<u8>) = if path.starts_with(&api) {
                let siblings: Vec<_> = files
                    .keys()
                    .chain(["README.md".to_string(), "tf_model.h5".to_string()].iter())
                    .map(|f| serde_json::json!({ "rfilename": f }))
                    .collect();
                let body = serde_json::json!({ "sha": SHA_A, "siblings": siblings });
                ("200 OK", vec![], body.to_string().into_bytes())
            } else if let Some(data) = path.strip_prefix(&resolve).and_then(|name| files.get(name))
            {
                let (start, end) = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.split_once('-'))
                    .map(|(s, e)| {
                        let s: usize = s.parse().unwrap();
                        let e = e.parse().unwrap_or(data.len() - 1).min(data.len() - 1);
                        (s, e)
                    })
                    .unwrap_or((0, data.len() - 1));
                let headers = vec![
                    format!("Content-Range: bytes {start}-{end}/{}", data.len()),
                    format!("ETag: \"etag-{}\"", path.len()),
                    format!("X-Repo-Commit: {SHA_A}"),
                ];
                ("206 Partial Content", headers, data[start..=end].to_vec())
            } else {
                ("404 Not Found", vec![], b"not found".to_vec())
            };
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for h in headers {
                head += &h;
                head += "\r\n";
            }
            head += "\r\n";
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        }
    });
    FakeHub { endpoint, requests }
}

#[test]
fn online_resolution_downloads_only_the_missing_files_into_the_cache_layout() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let tok = tokenizer_stub(root.path());
    let files: BTreeMap<String, Vec<u8>> = fixture_files("hf-safetensors", &tok)
        .into_iter()
        .map(|(name, path)| (name, std::fs::read(path).unwrap()))
        .collect();
    let hub = fake_hub(files.clone());
    // The cache already has config.json of that commit, but no ref.
    add_snapshot(
        &cache,
        REPO,
        SHA_A,
        &[(
            "config.json".into(),
            fixture("hf-safetensors").join("config.json"),
        )],
    );
    let opts = HubOptions {
        cache: cache.clone(),
        offline: false,
        endpoint: hub.endpoint.clone(),
        token: None,
        progress: false,
    };
    let spec = HubSpec::parse(&format!("{REPO}@main")).unwrap();
    let snap = resolve(&spec, &opts, whisper_files).unwrap();
    assert_eq!(snap.commit, SHA_A);
    for name in &snap.files {
        assert_eq!(
            std::fs::read(snap.dir.join(name)).unwrap(),
            files[name],
            "{name}"
        );
    }
    let requests = hub.requests.lock().unwrap().clone();
    assert!(
        requests.iter().all(|r| !r.ends_with("/config.json")
            && !r.ends_with("/README.md")
            && !r.ends_with("/tf_model.h5")),
        "{requests:?}"
    );
    assert!(requests.iter().any(|r| r.ends_with("/model.safetensors")));
    let repo_dir = cache.join("models--test-org--whisper-tiny-random");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        SHA_A
    );
    assert!(repo_dir
        .join("snapshots")
        .join(SHA_A)
        .join("model.safetensors")
        .is_symlink());

    // From now on the cache alone answers, and the network is not asked.
    let before = hub.requests.lock().unwrap().len();
    let again = resolve(&spec, &opts, whisper_files).unwrap();
    assert_eq!(again.dir, snap.dir);
    assert_eq!(hub.requests.lock().unwrap().len(), before);
    resolve(&spec, &offline(&cache), whisper_files).unwrap();

    // A repo the endpoint does not have: the error names it.
    let err = resolve(
        &HubSpec::parse("nobody/nothing").unwrap(),
        &opts,
        whisper_files,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nobody/nothing@main"), "{err}");
    assert!(err.contains("404"), "{err}");
}
