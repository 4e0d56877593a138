//! A regression manifest: the settings to transcribe with and the audio
//! items, validated with every problem reported at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::audio_glob::expand;
use crate::config::decode::DecodeOptions;
use crate::config::{Config, DeviceName};
use asr_models::QuantizeChoice;

/// One audio file of a regression set.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Names the snapshot: `<snapshot_dir>/<id>.snap`.
    pub id: String,
    /// The audio file (it may be missing: the item then fails).
    pub path: PathBuf,
    /// The path as the snapshot header shows it: relative to the manifest's
    /// folder, `/`-separated.
    pub input: String,
    /// A human transcript to compute the word error rate against.
    pub reference: Option<String>,
}

/// A validated regression manifest; paths are resolved against its folder.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Model, device and `[decode]` settings, as `pipeline run` reads them
    /// (the config's inputs and outputs are not used).
    pub config: Config,
    /// Where `<id>.snap` files live.
    pub snapshot_dir: PathBuf,
    pub items: Vec<Item>,
    /// The manifest's file name, written as the snapshots' `source`.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    /// A `pipeline run` config whose model, device and `[decode]` are used.
    config: Option<PathBuf>,
    /// Or the same settings inline.
    model: Option<String>,
    quantize: Option<QuantizeChoice>,
    device: Option<DeviceName>,
    decode: Option<DecodeOptions>,
    snapshots: Option<PathBuf>,
    /// `[[audio]]` tables, a list of paths/globs/folders, or one of them.
    audio: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: Option<String>,
    path: String,
    reference: Option<String>,
}

impl Manifest {
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|error| ManifestError::Read {
            path: path.into(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Manifest::from_toml(&text, base, &source).map_err(|problems| ManifestError::Invalid {
            path: path.into(),
            problems,
        })
    }

    /// Parses a manifest; relative paths are taken relative to `base`.
    /// `source` names the manifest in the snapshot headers. Every problem
    /// found is returned at once.
    pub fn from_toml(text: &str, base: &Path, source: &str) -> Result<Manifest, Vec<String>> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_string()])?;
        let mut problems = Vec::new();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let inline = raw.model.is_some()
            || raw.quantize.is_some()
            || raw.device.is_some()
            || raw.decode.is_some();
        let config = match raw.config {
            Some(_) if inline => {
                problems.push(
                    "config: give either a config file or inline model/quantize/device/[decode] settings, not both"
                        .into(),
                );
                None
            }
            Some(file) => match Config::from_file(&resolve(&file)) {
                Ok(config) => Some(config),
                Err(e) => {
                    problems.push(format!("config: {e}"));
                    None
                }
            },
            None => {
                // The same defaults and model resolution as `pipeline run`.
                let mut config = Config::from_toml("", base).expect("an empty config is valid");
                if let Some(model) = raw.model {
                    config.model = if base.join(&model).exists() {
                        base.join(&model).display().to_string()
                    } else {
                        model
                    };
                }
                config.quantize = raw.quantize.unwrap_or_default();
                config.device = raw.device.unwrap_or_default();
                config.decode = raw.decode.unwrap_or_default();
                Some(config)
            }
        };
        if let Some(config) = &config {
            problems.extend(config.decode.problems());
        }
        let items = match raw.audio {
            Some(audio) => audio_items(&audio, base, &mut problems),
            None => Vec::new(),
        };
        if items.is_empty() && problems.is_empty() {
            problems.push("audio: no audio files (add [[audio]] tables or audio = [...])".into());
        }
        let mut seen = HashSet::new();
        for item in &items {
            if let Err(why) = check_id(&item.id) {
                problems.push(format!("audio: id {:?} {why}", item.id));
            } else if !seen.insert(item.id.as_str()) {
                problems.push(format!(
                    "audio: id {:?} is used twice (give [[audio]] items distinct ids)",
                    item.id
                ));
            }
        }
        match config {
            Some(config) if problems.is_empty() => Ok(Manifest {
                config,
                snapshot_dir: resolve(raw.snapshots.as_deref().unwrap_or(Path::new("snapshots"))),
                items,
                source: source.into(),
            }),
            _ => Err(problems),
        }
    }

    /// `<snapshot_dir>/<id>.snap`.
    pub fn snapshot_path(&self, item: &Item) -> PathBuf {
        self.snapshot_dir.join(format!("{}.snap", item.id))
    }
}

/// Ids name files: no separators, no leading dot, nothing invisible.
fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        Err("is empty")
    } else if id.starts_with('.') {
        Err("starts with a dot")
    } else if id.contains(['/', '\\']) || id.chars().any(char::is_control) {
        Err("contains a path separator or a control character")
    } else {
        Ok(())
    }
}

fn audio_items(value: &toml::Value, base: &Path, problems: &mut Vec<String>) -> Vec<Item> {
    let entries = match value {
        toml::Value::Array(entries) => entries.iter().collect(),
        one => vec![one],
    };
    let mut items = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        match entry {
            toml::Value::String(pattern) => match expand(base, pattern) {
                Ok(paths) if paths.is_empty() => problems.push(format!(
                    "audio[{i}]: {pattern:?} names no audio file or folder of audio files"
                )),
                Ok(paths) => items.extend(paths.into_iter().map(|path| {
                    let id = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    item(id, path, base, None)
                })),
                Err(e) => problems.push(format!("audio[{i}]: {pattern:?}: {e}")),
            },
            toml::Value::Table(_) => match entry.clone().try_into::<RawItem>() {
                Ok(raw) => {
                    let path = base.join(&raw.path);
                    let id = raw.id.unwrap_or_else(|| {
                        path.file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    items.push(item(id, path, base, raw.reference));
                }
                Err(e) => problems.push(format!("audio[{i}]: {}", e.to_string().trim_end())),
            },
            other => problems.push(format!(
                "audio[{i}]: expected a path, a glob or a table {{ id, path, reference }}, found {}",
                other.type_str()
            )),
        }
    }
    items
}

fn item(id: String, path: PathBuf, base: &Path, reference: Option<String>) -> Item {
    let shown = path.strip_prefix(base).unwrap_or(&path);
    let input = shown
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    let input = if shown.is_absolute() {
        shown.display().to_string()
    } else {
        input
    };
    Item {
        id,
        path,
        input,
        reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regress::folder_with;

    #[test]
    fn audio_lists_tables_folders_and_globs() {
        let dir = folder_with(&[
            "clips/a/1.flac",
            "clips/a/2.wav",
            "clips/a/notes.txt",
            "clips/b/3.flac",
            "clips/.hidden/4.flac",
            "top.wav",
        ]);
        let base = dir.path();
        let manifest = Manifest::from_toml(
            r#"
            model = "tiny.en"
            snapshots = "snaps"
            audio = [
                "clips/**/*.flac",
                "clips/a",
                { id = "jfk", path = "top.wav", reference = "ask not" },
                "missing.wav",
            ]
            [decode]
            temperature = 0.0
            "#,
            base,
            "m.toml",
        )
        .unwrap_err();
        // 1.flac comes twice (glob and folder): a duplicate id.
        assert_eq!(manifest.len(), 1, "{manifest:?}");
        assert!(manifest[0].contains("\"1\" is used twice"), "{manifest:?}");

        let manifest = Manifest::from_toml(
            r#"
            model = "tiny.en"
            snapshots = "snaps"
            audio = ["clips/*/?.flac", "clips/a/*.wav", "missing.wav"]
            [[audio]]
            "#,
            base,
            "m.toml",
        );
        assert!(manifest.is_err(), "audio given twice is a TOML error");

        let manifest = Manifest::from_toml(
            r#"
            model = "tiny.en"
            snapshots = "snaps"
            audio = ["clips/*/?.flac", "clips/a/*.wav", "missing.wav", { path = "top.wav" }]
            [decode]
            temperature = 0.0
            "#,
            base,
            "m.toml",
        )
        .unwrap();
        let got: Vec<(&str, &str)> = manifest
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.input.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("1", "clips/a/1.flac"),
                ("3", "clips/b/3.flac"),
                ("2", "clips/a/2.wav"),
                ("missing", "missing.wav"),
                ("top", "top.wav"),
            ]
        );
        assert_eq!(manifest.config.decode.temperature, vec![0.0]);
        assert_eq!(manifest.config.model, "tiny.en");
        assert_eq!(manifest.snapshot_dir, base.join("snaps"));
        assert_eq!(
            manifest.snapshot_path(&manifest.items[0]),
            base.join("snaps/1.snap")
        );

        let folder = Manifest::from_toml("audio = \"clips/a\"", base, "m.toml").unwrap();
        assert_eq!(folder.items.len(), 2, "a folder gives its audio files");
        assert_eq!(folder.snapshot_dir, base.join("snapshots"));
    }

    #[test]
    fn manifest_problems_are_listed_together() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.toml"), "model = \"base\"\n").unwrap();
        let problems = Manifest::from_toml(
            r#"
            config = "run.toml"
            model = "tiny.en"
            audio = ["nothing/*.wav", { id = "a/x", path = "a.wav" }, { id = "a", path = "b.wav", refrence = "x" }, 3]
            "#,
            dir.path(),
            "m.toml",
        )
        .unwrap_err();
        let all = problems.join("\n");
        assert_eq!(problems.len(), 5, "{all}");
        for needle in [
            "not both",
            "names no audio file",
            "unknown field `refrence`",
            "found integer",
            "contains a path separator",
        ] {
            assert!(all.contains(needle), "{needle}: {all}");
        }
        let unknown = Manifest::from_toml("snapshot = \"x\"", dir.path(), "m.toml").unwrap_err();
        assert!(
            unknown[0].contains("unknown field `snapshot`"),
            "{unknown:?}"
        );

        let from_config = Manifest::from_toml(
            "config = \"run.toml\"\naudio = \"a.wav\"",
            dir.path(),
            "m.toml",
        )
        .unwrap();
        assert_eq!(from_config.config.model, "base");
        assert_eq!(from_config.items[0].path, dir.path().join("a.wav"));
        let bad_decode = Manifest::from_toml(
            "audio = \"a.wav\"\n[decode]\ntemperature = []",
            dir.path(),
            "m.toml",
        )
        .unwrap_err();
        assert!(bad_decode[0].contains("temperature"), "{bad_decode:?}");
    }
}
