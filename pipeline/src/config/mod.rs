//! The TOML file behind `pipeline run`. Unknown keys and bad values are
//! errors that name the file, the key and the reason.
//!
//! Quantization takes two top-level keys, as `pipeline convert` takes
//! `--quantize` and `--group-size`: `quantize = "q8"` (a name
//! [`Quantize`] reads) and an optional `quantize_group_size = 32` (64 when
//! unset).

pub mod decode;
mod inputs;
mod output_dir;
pub mod serve;

pub use inputs::output_stem;

use std::path::{Path, PathBuf};

use asr_models::{Quantization, QuantizeChoice};
use serde::Deserialize;

use crate::stages::align::AlignOptions;
use crate::stages::diarize::DiarizationOptions;
use crate::stages::output::{Format, SubtitleOptions};
use crate::stages::vad::VadOptions;
use crate::stream::StreamOptions;
use decode::DecodeOptions;
use serve::ServeOptions;

/// Where MLX runs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceName {
    #[default]
    Cpu,
    Gpu,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Optional so that embedders can build a `Pipeline` from the same file.
    #[serde(default)]
    input: Option<OneOrMany>,
    #[serde(default = "default_model")]
    model: String,
    /// `"auto" | "none" | "q8" | "q4" | "int8"`: how a converted model's
    /// weights are stored, and for `int8` (8-bit weights, as `q8`) that the
    /// encoder's and prompts' products round their activations to int8
    /// too; `auto` (the default) picks for the CPU at hand.
    #[serde(default)]
    quantize: QuantizeChoice,
    /// Weights per quantization group (32, 64 or 128; 64 when unset); only
    /// with a `quantize` other than `"none"`.
    quantize_group_size: Option<i32>,
    #[serde(default)]
    device: DeviceName,
    output_dir: Option<PathBuf>,
    #[serde(default = "default_formats")]
    formats: Vec<Format>,
    #[serde(default)]
    decode: DecodeOptions,
    #[serde(default)]
    subtitles: SubtitleOptions,
    /// Present (even empty): voice activity detection on, with these settings.
    #[serde(default)]
    vad: Option<VadOptions>,
    /// Present (even empty) and not `enabled = false`: speakers diarized.
    #[serde(default)]
    diarization: Option<DiarizationOptions>,
    /// Present: words timed by this wav2vec2 CTC aligner after recognition.
    #[serde(default)]
    align: Option<AlignOptions>,
    /// `pipeline stream`'s settings.
    #[serde(default)]
    stream: StreamOptions,
    /// `pipeline serve`'s settings.
    #[serde(default)]
    serve: ServeOptions,
}

fn default_model() -> String {
    "tiny.en".into()
}

fn default_formats() -> Vec<Format> {
    vec![Format::Txt]
}

/// A validated run configuration; relative paths are resolved against the
/// directory of the config file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub inputs: Vec<PathBuf>,
    /// A registry name (`tiny.en`) or a path to any checkpoint `convert` reads.
    pub model: String,
    /// How the model's linear and embedding weights are stored when the
    /// pipeline converts it (MLX affine, in groups of `quantize_group_size`,
    /// 64 when unset), and for `"int8"` int8 activations in its products;
    /// `auto` resolves when the run is planned.
    pub quantize: QuantizeChoice,
    pub device: DeviceName,
    /// Where output files go; none are written when unset.
    pub output_dir: Option<PathBuf>,
    pub formats: Vec<Format>,
    pub decode: DecodeOptions,
    /// How SRT/VTT cues are cut.
    pub subtitles: SubtitleOptions,
    /// Voice activity detection; `None` transcribes everything.
    pub vad: Option<VadOptions>,
    /// Speaker diarization; `None` when off.
    pub diarization: Option<DiarizationOptions>,
    /// A wav2vec2 CTC aligner after recognition; `None` keeps Whisper's
    /// own word times (`decode.word_timestamps`).
    pub align: Option<AlignOptions>,
    /// How `pipeline stream` transcribes live audio.
    pub stream: StreamOptions,
    /// Where and how `pipeline serve` serves requests.
    pub serve: ServeOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.into(),
            error,
        })?;
        Config::from_toml(&text, path.parent().unwrap_or(Path::new("."))).map_err(|message| {
            ConfigError::Invalid {
                path: path.into(),
                message,
            }
        })
    }

    /// Parses TOML; relative paths are taken relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, String> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        Config::from_raw(raw, base)
    }

    /// A configuration given as a TOML table rather than text (errors name
    /// the key rather than a line).
    pub fn from_table(table: toml::Table, base: &Path) -> Result<Config, String> {
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        Config::from_raw(raw, base)
    }

    fn from_raw(raw: RawConfig, base: &Path) -> Result<Config, String> {
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let inputs = match raw.input {
            Some(OneOrMany::One(p)) => vec![p],
            Some(OneOrMany::Many(ps)) => ps,
            None => Vec::new(),
        };
        let quantize = match (raw.quantize_group_size, raw.quantize) {
            (None, choice) => choice,
            (Some(_), QuantizeChoice::Auto) => {
                return Err(
                    "quantize_group_size: set, but quantize is \"auto\" (name q8, q4 or int8)"
                        .into(),
                )
            }
            (Some(_), QuantizeChoice::Fixed(q)) if q.weights.is_none() => {
                return Err("quantize_group_size: set, but quantize is \"none\"".into())
            }
            (Some(n), QuantizeChoice::Fixed(q)) => {
                Quantization::check_group_size(n)
                    .map_err(|e| format!("quantize_group_size: {e}"))?;
                QuantizeChoice::Fixed(q.with_group_size(n))
            }
        };
        let model_path = base.join(&raw.model);
        let model = if model_path.exists() {
            model_path.display().to_string()
        } else {
            raw.model
        };
        Ok(Config {
            inputs: inputs.into_iter().map(resolve).collect(),
            model,
            quantize,
            device: raw.device,
            output_dir: raw.output_dir.map(resolve),
            formats: raw.formats,
            decode: raw.decode,
            subtitles: raw.subtitles,
            vad: raw.vad,
            diarization: raw.diarization.filter(|d| d.enabled),
            align: raw.align.map(|align| AlignOptions {
                model: resolve(align.model.into()).display().to_string(),
                ..align
            }),
            stream: raw.stream,
            serve: raw.serve,
        })
    }

    /// Problems of the file's own settings (inputs, outputs, subtitles);
    /// the stages' settings are checked by [`crate::plan::StagePlan::of_config`].
    /// The output directory is created if missing, and tried.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.input_problems();
        out.extend(self.stream.problems());
        out.extend(self.serve.problems());
        if self.formats.is_empty() {
            out.push("formats: empty list".into());
        }
        out.extend(
            self.output_dir
                .as_deref()
                .and_then(output_dir::output_dir_problem),
        );
        if self.subtitles.uses_words() && !self.decode.word_timestamps && self.align.is_none() {
            out.push("subtitles: highlight_words and max_words_per_line need decode.word_timestamps = true or [align]".into());
        }
        out.extend(self.align.iter().flat_map(AlignOptions::problems));
        out.extend(
            self.diarization
                .iter()
                .flat_map(DiarizationOptions::problems),
        );
        if self.formats.contains(&Format::Rttm) && self.diarization.is_none() {
            out.push("formats: rttm holds speaker turns and needs [diarization]".into());
        }
        if self.subtitles.max_words_per_line == Some(0) {
            out.push("subtitles.max_words_per_line: must be at least 1".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asr_models::{Activations, Quantize};

    #[test]
    fn quantize_names_the_storage_of_converted_weights() {
        let parse = |text: &str| Config::from_toml(text, Path::new("."));
        let fixed = |text: &str| match parse(text).unwrap().quantize {
            QuantizeChoice::Fixed(q) => q,
            QuantizeChoice::Auto => panic!("{text}: auto"),
        };
        assert_eq!(parse("").unwrap().quantize, QuantizeChoice::Auto);
        assert_eq!(
            parse("quantize = \"auto\"").unwrap().quantize,
            QuantizeChoice::Auto
        );
        assert_eq!(fixed("quantize = \"none\""), Quantize::default());
        let q = |bits| {
            Some(Quantization {
                bits,
                group_size: 64,
            })
        };
        assert_eq!(fixed("quantize = \"q8\"").weights, q(8));
        assert_eq!(fixed("quantize = \"q4\"").weights, q(4));
        // int8: stored as q8, multiplied with int8 activations.
        let int8 = fixed("quantize = \"int8\"");
        assert_eq!((int8.weights, int8.activations), (q(8), Activations::Int8));
        assert_eq!(fixed("quantize = \"q8\"").activations, Activations::F32);
        let err = parse("quantize = \"q3\"").unwrap_err();
        assert!(
            err.contains("quantize") && err.contains("q8") && err.contains("auto"),
            "{err}"
        );

        let grouped = fixed("quantize = \"q4\"\nquantize_group_size = 32");
        assert_eq!(
            grouped.weights,
            Some(Quantization {
                bits: 4,
                group_size: 32,
            })
        );
        let err = parse("quantize = \"q8\"\nquantize_group_size = 48").unwrap_err();
        assert!(
            err.contains("quantize_group_size") && err.contains("48"),
            "{err}"
        );
        for text in [
            "quantize_group_size = 32",
            "quantize = \"none\"\nquantize_group_size = 32",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("quantize_group_size"), "{err}");
        }
    }
}
