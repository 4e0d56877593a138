//! A run as a chain of stages, planned from the settings and checked before
//! any audio is read: each stage states what it consumes and produces, so a
//! switched-off or replaced stage that breaks the chain is an error, and
//! every problem (model, device, parameters) is reported at once.

use std::fmt;
use std::path::Path;

use asr_converters::whisper::Quantization;
use asr_converters::{hub::HubSpec, registry};
use asr_models::Activations;

use crate::config::{Config, DeviceName, Format};
use crate::decode_options::DecodeOptions;
use crate::model_source::{is_mlx_folder, quantization_mismatch};
use crate::vad::VadOptions;

/// What flows between stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    /// An audio file path.
    File,
    /// 16 kHz mono samples (CPU: file decoding is inherently CPU work).
    Samples,
    /// Log-mel frames (MLX array).
    LogMel,
    /// Encoder output per 30 s window (MLX array).
    AudioFeatures,
    Transcript,
    /// Files written in the output formats.
    Outputs,
}

/// One step of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: &'static str,
    /// What does the work, in words (e.g. the model or the hook's name).
    pub implementation: String,
    pub input: Data,
    pub output: Data,
}

/// The planned stages, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    pub stages: Vec<Stage>,
}

/// What a plan is made from: the settings that shape the stages.
pub struct PlanSettings<'a> {
    pub model: &'a str,
    pub quantize: Option<Quantization>,
    pub activations: Activations,
    pub device: DeviceName,
    pub decode: &'a DecodeOptions,
    pub vad: Option<&'a VadOptions>,
    pub alignment: Option<&'a str>,
    pub diarization: Option<&'a str>,
    /// Output formats; none when the caller keeps the transcript in memory.
    pub formats: &'a [Format],
}

impl<'a> PlanSettings<'a> {
    /// The model, device, decoding and output settings of a run config.
    pub fn of_config(config: &'a Config) -> Self {
        PlanSettings {
            model: &config.model,
            quantize: config.quantize,
            activations: config.activations,
            device: config.device,
            decode: &config.decode,
            vad: config.vad.as_ref(),
            alignment: None,
            diarization: None,
            formats: if config.output_dir.is_some() {
                &config.formats
            } else {
                &[]
            },
        }
    }
}

fn stage(name: &'static str, implementation: String, input: Data, output: Data) -> Stage {
    Stage {
        name,
        implementation,
        input,
        output,
    }
}

impl StagePlan {
    /// Plans the stages and checks everything that can be checked without
    /// audio or loading the model; `Err` lists every problem.
    pub fn new(settings: &PlanSettings<'_>) -> Result<StagePlan, Vec<String>> {
        let mut problems = settings.decode.problems();
        problems.extend(settings.vad.iter().flat_map(|v| v.problems()));
        problems.extend(model_problem(settings.model, settings.quantize));
        if settings.activations == Activations::Int8
            && settings.quantize.is_some_and(|q| q.bits != 8)
        {
            problems.push("activations: int8 activations need 8-bit weights".into());
        }
        if settings.device == DeviceName::Gpu && !mlx::is_available(mlx::Device::Gpu) {
            problems.push(
                "device: gpu is not available in this MLX build (a CUDA or Metal build is needed)"
                    .into(),
            );
        }
        let mut stages = vec![stage(
            "audio",
            "symphonia decode + rubato resampling, streamed in 1 s blocks".into(),
            Data::File,
            Data::Samples,
        )];
        if let Some(v) = settings.vad {
            stages.push(stage(
                "vad",
                format!(
                    "WebRTC VAD mode {}, {} ms frames, {} ms padding; times mapped back",
                    v.mode, v.frame_ms, v.speech_pad_ms
                ),
                Data::Samples,
                Data::Samples,
            ));
        }
        stages.extend([
            stage(
                "log-mel",
                "Whisper log-mel on MLX, 5-minute chunks".into(),
                Data::Samples,
                Data::LogMel,
            ),
            stage(
                "encoder",
                format!(
                    "Whisper encoder ({}{}{}), per 30 s window",
                    settings.model,
                    settings.quantize.map_or(String::new(), |q| format!(
                        ", {}-bit weights in groups of {}",
                        q.bits, q.group_size
                    )),
                    activations_note(settings.activations)
                ),
                Data::LogMel,
                Data::AudioFeatures,
            ),
            stage(
                "decoder",
                format!(
                    "{}{}",
                    decoder_description(settings.decode),
                    batching_note(settings)
                ),
                Data::AudioFeatures,
                Data::Transcript,
            ),
        ]);
        if let Some(name) = settings.alignment {
            stages.push(stage(
                "alignment",
                format!("hook {name}"),
                Data::Transcript,
                Data::Transcript,
            ));
        }
        if let Some(name) = settings.diarization {
            stages.push(stage(
                "diarization",
                format!("hook {name}"),
                Data::Transcript,
                Data::Transcript,
            ));
        }
        if !settings.formats.is_empty() {
            let names: Vec<&str> = settings.formats.iter().map(|f| f.extension()).collect();
            stages.push(stage(
                "output",
                names.join(", "),
                Data::Transcript,
                Data::Outputs,
            ));
        }
        let plan = StagePlan { stages };
        problems.extend(plan.chain_problems());
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(problems)
        }
    }

    /// Consecutive stages whose data do not fit together.
    fn chain_problems(&self) -> Vec<String> {
        self.stages
            .windows(2)
            .filter(|pair| pair[0].output != pair[1].input)
            .map(|pair| {
                format!(
                    "stages: {} produces {:?} but {} needs {:?}",
                    pair[0].name, pair[0].output, pair[1].name, pair[1].input
                )
            })
            .collect()
    }
}

impl fmt::Display for StagePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            let flow = format!("{:?} → {:?}", s.input, s.output);
            writeln!(
                f,
                "{}. {:<12} {:<28} {}",
                i + 1,
                s.name,
                flow,
                s.implementation
            )?;
        }
        Ok(())
    }
}

fn decoder_description(d: &DecodeOptions) -> String {
    let mode = if d.without_timestamps {
        "text only"
    } else {
        "timestamps, seek loop"
    };
    let language = d.language.as_deref().unwrap_or("detected");
    let search = match d.beam_size {
        Some(beams) if beams > 1 => format!("beam search ({beams} beams)"),
        _ => "greedy decoding".to_string(),
    };
    format!(
        "Whisper {search} ({mode}; {:?}; language {language}; temperatures {:?})",
        d.task, d.temperature
    )
}

/// What is decoded side by side (see `Transcriber::transcribe_many`):
/// several files' first windows, or a file's VAD-packed pieces.
fn batching_note(settings: &PlanSettings<'_>) -> String {
    let d = settings.decode;
    if !d.greedy_first() || d.batch_size < 2 {
        return String::new();
    }
    let hooks = settings.alignment.is_some() || settings.diarization.is_some();
    match settings.vad {
        None if !hooks => format!(
            ", first windows of up to {} files side by side",
            d.batch_size
        ),
        Some(vad) if vad.pack_into_windows => {
            format!(", up to {} speech pieces side by side", d.batch_size)
        }
        _ => String::new(),
    }
}

/// What int8 activations become on this machine.
fn activations_note(activations: Activations) -> &'static str {
    match activations {
        Activations::F32 => "",
        Activations::Int8 if mlx::kernels::int8_products_available() => {
            ", int8 activations (AVX-512 VNNI)"
        }
        Activations::Int8 => ", int8 activations unavailable here (no AVX-512 VNNI): f32",
    }
}

/// Whether `spec` can name a model at all (without fetching or loading it),
/// and be quantized as asked.
fn model_problem(spec: &str, quantize: Option<Quantization>) -> Option<String> {
    let path = Path::new(spec);
    let known = path.exists() || registry::is_known(spec) || HubSpec::parse(spec).is_some();
    if !known {
        return Some(format!(
            "model: {spec:?} is not an existing path, a registry model ({}) or a Hugging Face repo id (org/name)",
            registry::known_models().join(", ")
        ));
    }
    if !is_mlx_folder(path) {
        return None;
    }
    quantization_mismatch(path, quantize).map(|problem| format!("quantize: {spec} is {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(model: &'a str, decode: &'a DecodeOptions) -> PlanSettings<'a> {
        PlanSettings {
            model,
            quantize: None,
            activations: Activations::F32,
            device: DeviceName::Cpu,
            decode,
            vad: None,
            alignment: None,
            diarization: None,
            formats: &[Format::Json],
        }
    }

    #[test]
    fn the_default_plan_chains_audio_to_outputs() {
        let decode = DecodeOptions::default();
        let plan = StagePlan::new(&settings("tiny.en", &decode)).unwrap();
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name).collect();
        assert_eq!(names, ["audio", "log-mel", "encoder", "decoder", "output"]);
        assert!(plan.chain_problems().is_empty());
        let hooked = PlanSettings {
            alignment: Some("even-words"),
            diarization: Some("two-speakers"),
            ..settings("tiny.en", &decode)
        };
        let plan = StagePlan::new(&hooked).unwrap();
        assert_eq!(plan.stages[4].implementation, "hook even-words");
        assert_eq!(plan.stages[5].name, "diarization");
    }

    #[test]
    fn the_decoder_stage_says_what_is_decoded_side_by_side() {
        let note = |decode: &DecodeOptions, vad: Option<&VadOptions>, hook: Option<&str>| {
            let settings = PlanSettings {
                vad,
                alignment: hook,
                ..settings("tiny.en", decode)
            };
            let plan = StagePlan::new(&settings).unwrap();
            let decoder = plan.stages.iter().find(|s| s.name == "decoder").unwrap();
            decoder.implementation.clone()
        };
        let greedy = DecodeOptions::default();
        let files = ", first windows of up to 8 files side by side";
        assert!(note(&greedy, None, None).ends_with(files));
        let packed = VadOptions {
            pack_into_windows: true,
            ..VadOptions::default()
        };
        let pieces = ", up to 8 speech pieces side by side";
        assert!(note(&greedy, Some(&packed), Some("even-words")).ends_with(pieces));
        // One at a time: streamed VAD, hooks, beam search, sampling first, batch_size 1.
        let streamed = VadOptions::default();
        let beams = DecodeOptions {
            beam_size: Some(5),
            ..DecodeOptions::default()
        };
        let sampled = DecodeOptions {
            temperature: vec![0.2],
            ..DecodeOptions::default()
        };
        let single = DecodeOptions {
            batch_size: 1,
            ..DecodeOptions::default()
        };
        for text in [
            note(&greedy, Some(&streamed), None),
            note(&greedy, None, Some("even-words")),
            note(&beams, None, None),
            note(&sampled, None, None),
            note(&single, None, None),
        ] {
            assert!(!text.contains("side by side"), "{text}");
        }
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let decode = DecodeOptions {
            temperature: vec![],
            ..DecodeOptions::default()
        };
        let problems = StagePlan::new(&settings("no/such/thing/here", &decode)).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("decode.temperature"));
        assert!(problems[1].starts_with("model: \"no/such/thing/here\""));
    }

    /// An MLX folder whose config.json says how it is stored.
    fn mlx_folder(quantization: &str) -> tempfile::TempDir {
        let folder = tempfile::tempdir().unwrap();
        let config = format!(
            r#"{{"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
                "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
                "n_text_head": 6, "n_text_layer": 4{quantization}}}"#
        );
        std::fs::write(folder.path().join("config.json"), config).unwrap();
        std::fs::write(folder.path().join("weights.safetensors"), b"").unwrap();
        folder
    }

    #[test]
    fn quantize_may_repeat_how_an_mlx_folder_is_stored() {
        let decode = DecodeOptions::default();
        let q = |bits| {
            Some(Quantization {
                bits,
                group_size: 64,
            })
        };
        let q8_folder = mlx_folder(r#", "quantization": {"bits": 8, "group_size": 64}"#);
        let spec = q8_folder.path().display().to_string();
        for activations in [Activations::F32, Activations::Int8] {
            let plan = StagePlan::new(&PlanSettings {
                quantize: q(8),
                activations,
                ..settings(&spec, &decode)
            });
            assert!(plan.is_ok(), "{plan:?}");
        }
        // Another width, or an unquantized folder: refused, saying what it holds.
        let problems = StagePlan::new(&PlanSettings {
            quantize: q(4),
            ..settings(&spec, &decode)
        })
        .unwrap_err();
        assert!(
            problems[0].contains("(8-bit in groups of 64)"),
            "{problems:?}"
        );
        let f32_folder = mlx_folder("");
        let spec = f32_folder.path().display().to_string();
        let problems = StagePlan::new(&PlanSettings {
            quantize: q(8),
            ..settings(&spec, &decode)
        })
        .unwrap_err();
        assert!(problems[0].contains("(unquantized)"), "{problems:?}");
        // int8 activations need 8-bit weights.
        let problems = StagePlan::new(&PlanSettings {
            quantize: q(4),
            activations: Activations::Int8,
            ..settings("tiny.en", &decode)
        })
        .unwrap_err();
        assert_eq!(
            problems,
            ["activations: int8 activations need 8-bit weights"]
        );
    }

    #[test]
    fn quantize_is_shown_and_refused_for_a_finished_mlx_folder() {
        let decode = DecodeOptions::default();
        let q8 = Some(Quantization {
            bits: 8,
            group_size: 64,
        });
        let plan = StagePlan::new(&PlanSettings {
            quantize: q8,
            ..settings("tiny.en", &decode)
        })
        .unwrap();
        assert!(plan.stages[2]
            .implementation
            .contains("tiny.en, 8-bit weights in groups of 64"));
        let folder = tempfile::tempdir().unwrap();
        for file in ["weights.safetensors", "config.json"] {
            std::fs::write(folder.path().join(file), b"{}").unwrap();
        }
        let spec = folder.path().display().to_string();
        let problems = StagePlan::new(&PlanSettings {
            quantize: q8,
            ..settings(&spec, &decode)
        })
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with(&format!("quantize: {spec} is already an MLX model folder"))
        );
        assert!(StagePlan::new(&settings(&spec, &decode)).is_ok());
    }

    #[test]
    fn a_broken_chain_is_reported() {
        let mut plan = StagePlan::new(&settings("tiny.en", &DecodeOptions::default())).unwrap();
        plan.stages.remove(1); // no log-mel: the encoder gets samples
        assert_eq!(
            plan.chain_problems(),
            ["stages: audio produces Samples but encoder needs LogMel"]
        );
    }
}
