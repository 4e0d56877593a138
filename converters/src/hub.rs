//! Checkpoints from the Hugging Face Hub (`openai/whisper-tiny.en`,
//! `Systran/faster-whisper-base`, `hf:org/name@revision`), read from the
//! local Hugging Face cache first and downloaded — only the files conversion
//! needs, only those missing — with `hf-hub` into that same cache, in its
//! layout, so Python tools share it:
//!
//! ```text
//! <cache>/models--org--name/refs/<revision>          commit sha of a branch or tag
//! <cache>/models--org--name/snapshots/<sha>/<file>   (symlinks to ../../blobs/<etag>)
//! ```
//!
//! The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
//! `HF_HUB_OFFLINE=1` never touches the network: what the cache lacks is an
//! error naming the repo, the file and where it looked.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::error::{ConvertError, Result};

/// A model repository on the Hub at a revision (branch, tag or commit sha).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSpec {
    pub repo: String,
    pub revision: String,
}

impl HubSpec {
    /// Reads `hf:org/name[@revision]` (also `hf:name`) or `org/name[@revision]`;
    /// `None` when `spec` is neither. The revision defaults to `main`.
    pub fn parse(spec: &str) -> Option<HubSpec> {
        let (explicit, rest) = match spec.strip_prefix("hf:") {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let (repo, revision) = match rest.split_once('@') {
            Some((repo, revision)) => (repo, revision),
            None => (rest, "main"),
        };
        let segments: Vec<&str> = repo.split('/').collect();
        let shape_ok = match segments.len() {
            2 => true,
            1 => explicit,
            _ => false,
        };
        if !shape_ok || !segments.iter().all(|s| valid_segment(s)) || !valid_revision(revision) {
            return None;
        }
        Some(HubSpec {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// Whether `spec` names the Hub explicitly (`hf:`), so that it is never
    /// taken for a local path.
    pub fn is_explicit(spec: &str) -> bool {
        spec.starts_with("hf:")
    }

    /// `models--org--name`, the repo's folder in the cache.
    pub fn folder_name(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }
}

impl Display for HubSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

/// A repo or user name as the Hub allows it.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.starts_with(['-', '.'])
        && !s.ends_with('.')
        && !s.contains("--")
        && !s.contains("..")
}

fn valid_revision(r: &str) -> bool {
    !r.is_empty()
        && !r.contains("..")
        && !r.starts_with('/')
        && !r.ends_with('/')
        && r.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b':' | b'@'))
}

fn is_commit_sha(r: &str) -> bool {
    r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where and how to look for Hub models.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// The Hugging Face hub cache (`…/huggingface/hub`).
    pub cache: PathBuf,
    /// Never use the network.
    pub offline: bool,
    /// `https://huggingface.co` unless `HF_ENDPOINT` says otherwise.
    pub endpoint: String,
    pub token: Option<String>,
    /// Draw download progress bars on stderr.
    pub progress: bool,
}

impl HubOptions {
    /// From `HF_HUB_CACHE`/`HF_HOME`/`XDG_CACHE_HOME`/`HOME`, `HF_HUB_OFFLINE`,
    /// `HF_ENDPOINT` and `HF_TOKEN` (else the token file `huggingface-cli
    /// login` writes).
    pub fn from_env() -> HubOptions {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// As [`HubOptions::from_env`], with `var` standing for the environment.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> HubOptions {
        let text = |name: &str| {
            var(name)
                .map(|v| v.to_string_lossy().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let offline = text("HF_HUB_OFFLINE").is_some_and(|v| {
            ["1", "on", "yes", "true"]
                .iter()
                .any(|t| v.eq_ignore_ascii_case(t))
        });
        let token = text("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        HubOptions {
            cache,
            offline,
            endpoint: text("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            token,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

/// A checkpoint folder inside the cache: `snapshots/<commit>` of `spec`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub spec: HubSpec,
    pub commit: String,
    pub dir: PathBuf,
    /// The files conversion reads, all present in `dir`.
    pub files: Vec<String>,
}

impl Snapshot {
    /// A name for things derived from this snapshot: repo and commit.
    pub fn cache_key(&self) -> String {
        let short = &self.commit[..self.commit.len().min(12)];
        format!("hf-{}-{short}", self.spec.repo.replace('/', "--"))
    }
}

/// Weight files in the order conversion prefers them (CTranslate2 first, as
/// the converter recognizes a folder by its `model.bin`).
const WEIGHTS: &[&str] = &[
    "model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// Small files conversion copies or reads when the repo has them.
const OPTIONAL: &[&str] = &[
    "generation_config.json",
    "vocabulary.txt",
    "vocabulary.json",
    "preprocessor_config.json",
];

/// A family's choice of the files to read from a repo whose file names are
/// the listing; `Err` says what is missing. A `*.index.json` among them
/// brings the shards it names.
pub type RepoFiles = fn(&BTreeSet<String>) -> std::result::Result<Vec<String>, String>;

/// Whisper's files: config, tokenizer, one set of weights (shards come from
/// the index later) and the optional files the repo has.
pub fn whisper_files(listing: &BTreeSet<String>) -> std::result::Result<Vec<String>, String> {
    let weights = WEIGHTS
        .iter()
        .find(|w| listing.contains(**w))
        .ok_or_else(|| {
            format!(
                "no weights: none of {} (an MLX-only or other repo is not supported)",
                WEIGHTS.join(", ")
            )
        })?;
    let mut files: Vec<String> = ["config.json", "tokenizer.json", weights]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ct2 = *weights == "model.bin";
    files.extend(
        OPTIONAL
            .iter()
            .filter(|f| listing.contains(**f))
            .filter(|f| ct2 || !f.starts_with("vocabulary"))
            .map(|f| f.to_string()),
    );
    Ok(files)
}

/// The shard files a `*.index.json` weight map names.
fn shards(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(ConvertError::io(index))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ConvertError::format(index, format!("invalid JSON: {e}")))?;
    let map = json["weight_map"]
        .as_object()
        .ok_or_else(|| ConvertError::format(index, "no weight_map"))?;
    let names: BTreeSet<String> = map
        .values()
        .filter_map(|v| v.as_str())
        .map(String::from)
        .collect();
    for name in &names {
        if name.contains("..") || name.starts_with('/') {
            return Err(ConvertError::format(
                index,
                format!("shard name {name:?} leaves the snapshot"),
            ));
        }
    }
    Ok(names.into_iter().collect())
}

fn hub_error(spec: &HubSpec, path: &Path, message: impl Display) -> ConvertError {
    ConvertError::format(path, format!("Hugging Face repo {spec}: {message}"))
}

/// The snapshot of `spec` in the cache, if the cache knows the revision:
/// `refs/<revision>` names the commit, or the revision is a commit sha.
fn local_commit(repo_dir: &Path, revision: &str) -> Option<String> {
    let commit = std::fs::read_to_string(repo_dir.join("refs").join(revision))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    commit.or_else(|| {
        let dir = repo_dir.join("snapshots").join(revision);
        (is_commit_sha(revision) && dir.is_dir()).then(|| revision.to_string())
    })
}

/// Files present in a snapshot folder (symlinks to missing blobs do not
/// count).
fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What a local snapshot lacks for conversion; empty when complete.
fn missing_in(dir: &Path, choose: RepoFiles) -> Result<(Vec<String>, Vec<String>)> {
    let present = listing(dir);
    let mut files = match choose(&present) {
        Ok(files) => files,
        Err(reason) => return Ok((Vec::new(), vec![reason])),
    };
    let mut missing: Vec<String> = files
        .iter()
        .filter(|f| !present.contains(*f))
        .cloned()
        .collect();
    if let Some(index) = files.iter().find(|f| f.ends_with(".index.json")).cloned() {
        for shard in shards(&dir.join(index))? {
            if !present.contains(&shard) {
                missing.push(shard.clone());
            }
            files.push(shard);
        }
    }
    Ok((files, missing))
}

/// Finds (and, unless offline, completes by download) the snapshot of
/// `spec` in `opts.cache`, with the files `choose` picks.
pub fn resolve(spec: &HubSpec, opts: &HubOptions, choose: RepoFiles) -> Result<Snapshot> {
    let repo_dir = opts.cache.join(spec.folder_name());
    let local = local_commit(&repo_dir, &spec.revision);
    let why = match &local {
        Some(commit) => {
            let dir = repo_dir.join("snapshots").join(commit);
            let (files, missing) = missing_in(&dir, choose)?;
            if missing.is_empty() {
                return Ok(Snapshot {
                    spec: spec.clone(),
                    commit: commit.clone(),
                    dir,
                    files,
                });
            }
            (dir, format!("missing {}", missing.join(", ")))
        }
        None => (
            repo_dir.clone(),
            if repo_dir.is_dir() {
                format!("revision {} is not in the cache", spec.revision)
            } else {
                "not in the cache".to_string()
            },
        ),
    };
    if opts.offline {
        return Err(hub_error(
            spec,
            &why.0,
            format!(
                "{} (looked in {}); HF_HUB_OFFLINE is set, so nothing was downloaded",
                why.1,
                opts.cache.display()
            ),
        ));
    }
    download(spec, opts, &repo_dir, choose)
}

/// Downloads what the cache lacks of `spec` at the commit its revision
/// names now, then records the revision in `refs/`.
fn download(
    spec: &HubSpec,
    opts: &HubOptions,
    repo_dir: &Path,
    choose: RepoFiles,
) -> Result<Snapshot> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    let err = |path: &Path, message: String| hub_error(spec, path, message);
    let api = ApiBuilder::from_cache(Cache::new(opts.cache.clone()))
        .with_endpoint(opts.endpoint.clone())
        .with_token(opts.token.clone())
        .with_progress(opts.progress)
        .with_retries(2)
        .build()
        .map_err(|e| err(&opts.cache, format!("cannot start a Hub client: {e}")))?;
    let info = api
        .repo(Repo::with_revision(
            spec.repo.clone(),
            RepoType::Model,
            spec.revision.clone(),
        ))
        .info()
        .map_err(|e| {
            err(
                &opts.cache,
                format!("cannot list the repo on {}: {e}", opts.endpoint),
            )
        })?;
    if !is_commit_sha(&info.sha) {
        return Err(err(
            &opts.cache,
            format!("the Hub answered a bad commit sha {:?}", info.sha),
        ));
    }
    let remote: BTreeSet<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let mut files = choose(&remote).map_err(|reason| err(&opts.cache, reason))?;
    if let Some(absent) = files.iter().find(|f| !remote.contains(*f)) {
        return Err(err(
            &opts.cache,
            format!("the repo has no {absent} (the transcriber needs one)"),
        ));
    }
    // Every file from the one commit the revision names now.
    let pinned = api.repo(Repo::with_revision(
        spec.repo.clone(),
        RepoType::Model,
        info.sha.clone(),
    ));
    let dir = repo_dir.join("snapshots").join(&info.sha);
    let fetch = |file: &str| -> Result<()> {
        if dir.join(file).is_file() {
            return Ok(());
        }
        tracing::info!(repo = %spec.repo, commit = %info.sha, file, "downloading from the Hugging Face Hub");
        pinned
            .download(file)
            .map(|_| ())
            .map_err(|e| err(&dir, format!("cannot download {file}: {e}")))
    };
    for file in &files {
        fetch(file)?;
    }
    if let Some(index) = files.iter().find(|f| f.ends_with(".index.json")).cloned() {
        for shard in shards(&dir.join(index))? {
            if !remote.contains(&shard) {
                return Err(err(
                    &dir,
                    format!("the index names {shard}, not in the repo"),
                ));
            }
            fetch(&shard)?;
            files.push(shard);
        }
    }
    if spec.revision != info.sha {
        let refs = repo_dir.join("refs").join(&spec.revision);
        if let Some(parent) = refs.parent() {
            std::fs::create_dir_all(parent).map_err(ConvertError::io(parent))?;
        }
        std::fs::write(&refs, &info.sha).map_err(ConvertError::io(&refs))?;
    }
    Ok(Snapshot {
        spec: spec.clone(),
        commit: info.sha,
        dir,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(repo: &str, revision: &str) -> Option<HubSpec> {
        Some(HubSpec {
            repo: repo.into(),
            revision: revision.into(),
        })
    }

    #[test]
    fn specs() {
        assert_eq!(
            HubSpec::parse("openai/whisper-tiny.en"),
            spec("openai/whisper-tiny.en", "main")
        );
        assert_eq!(
            HubSpec::parse("hf:Systran/faster-whisper-base@v1.0"),
            spec("Systran/faster-whisper-base", "v1.0")
        );
        assert_eq!(
            HubSpec::parse("org/name@refs/pr/3"),
            spec("org/name", "refs/pr/3")
        );
        assert_eq!(HubSpec::parse("hf:gpt2"), spec("gpt2", "main"));
        for bad in [
            "tiny.en",
            "gpt2",
            "./org/name",
            "/abs/path",
            "a/b/c",
            "org/",
            "/name",
            "org/na me",
            "org/name@",
            "org/name@../x",
            "org--x/name",
            "org/.hidden",
            "C:\\models\\x",
            "hf:",
        ] {
            assert_eq!(HubSpec::parse(bad), None, "{bad}");
        }
        assert!(HubSpec::is_explicit("hf:a/b") && !HubSpec::is_explicit("a/b"));
        assert_eq!(
            HubSpec::parse("openai/whisper-tiny.en")
                .unwrap()
                .folder_name(),
            "models--openai--whisper-tiny.en"
        );
    }

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn cache_location_follows_huggingface_hub() {
        let o = HubOptions::from_vars(vars(&[
            ("HF_HUB_CACHE", "/a/hub"),
            ("HF_HOME", "/b"),
            ("HOME", "/h"),
        ]));
        assert_eq!(o.cache, PathBuf::from("/a/hub"));
        let o = HubOptions::from_vars(vars(&[("HF_HOME", "/b"), ("HOME", "/h")]));
        assert_eq!(o.cache, PathBuf::from("/b/hub"));
        let o = HubOptions::from_vars(vars(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]));
        assert_eq!(o.cache, PathBuf::from("/x/huggingface/hub"));
        let o = HubOptions::from_vars(vars(&[("HOME", "/h")]));
        assert_eq!(o.cache, PathBuf::from("/h/.cache/huggingface/hub"));
        assert!(!o.offline);
        assert_eq!(o.endpoint, "https://huggingface.co");
        for on in ["1", "TRUE", "yes", "On"] {
            assert!(HubOptions::from_vars(vars(&[("HF_HUB_OFFLINE", on)])).offline);
        }
        for off in ["0", "", "false", "no"] {
            assert!(!HubOptions::from_vars(vars(&[("HF_HUB_OFFLINE", off)])).offline);
        }
        let o = HubOptions::from_vars(vars(&[
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
            ("HF_TOKEN", "hf_x"),
        ]));
        assert_eq!(o.endpoint, "http://127.0.0.1:9");
        assert_eq!(o.token.as_deref(), Some("hf_x"));
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_what_conversion_needs_is_chosen() {
        let hf = names(&[
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "pytorch_model.bin",
            "tf_model.h5",
            "flax_model.msgpack",
            "generation_config.json",
            "vocab.json",
            "README.md",
        ]);
        assert_eq!(
            whisper_files(&hf).unwrap(),
            [
                "config.json",
                "tokenizer.json",
                "model.safetensors",
                "generation_config.json"
            ]
        );
        let ct2 = names(&[
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt",
            "README.md",
        ]);
        assert_eq!(
            whisper_files(&ct2).unwrap(),
            [
                "config.json",
                "tokenizer.json",
                "model.bin",
                "vocabulary.txt"
            ]
        );
        let mlx = names(&["config.json", "weights.npz"]);
        assert!(whisper_files(&mlx).unwrap_err().contains("no weights"));
    }
}
