//! The plan of a run: the stages it goes through, in order, built from the
//! settings in one validation pass before any audio is read or any model
//! loaded. Each stage states what it consumes and produces, so a stage
//! that breaks the chain is an error, and every problem (model, device,
//! parameters) is reported at once. [`crate::Pipeline`] loads the plan's
//! stages and runs them in this order.

use std::fmt;

use asr_models::{Quantize, QuantizeChoice};

use crate::config::decode::DecodeOptions;
use crate::config::{Config, DeviceName};
use crate::stages::align::AlignStage;
use crate::stages::diarize::DiarizeStage;
use crate::stages::output::Format;
use crate::stages::transcribe::{family_for, Batching, RecognizerSettings};
use crate::stages::vad::{detector, VadOptions};
use crate::stages::{Data, StageInfo};

/// The planned stages, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    pub stages: Vec<StageInfo>,
}

/// What a plan is made from: the settings that shape the stages.
pub struct PlanSettings<'a> {
    pub model: &'a str,
    pub quantize: Quantize,
    pub device: DeviceName,
    pub decode: &'a DecodeOptions,
    pub vad: Option<&'a VadOptions>,
    /// The stages after recognition (aligners, diarizers), in order.
    pub after_recognition: Vec<StageInfo>,
    /// Output formats; none when the caller keeps the transcript in memory.
    pub formats: &'a [Format],
}

impl<'a> PlanSettings<'a> {
    /// The model, device, decoding and output settings of a run config.
    pub fn of_config(config: &'a Config) -> Self {
        PlanSettings {
            model: &config.model,
            quantize: resolve_quantize(config.quantize, &config.model),
            device: config.device,
            decode: &config.decode,
            vad: config.vad.as_ref(),
            // Words are timed before speakers label them.
            after_recognition: config
                .align
                .iter()
                .map(|a| AlignStage::info_for(a.describe()))
                .chain(
                    config
                        .diarization
                        .iter()
                        .map(|d| DiarizeStage::info_for(d.describe())),
                )
                .collect(),
            formats: if config.output_dir.is_some() {
                &config.formats
            } else {
                &[]
            },
        }
    }

    /// How recordings reach the recognizer: whole files together without
    /// voice activity detection, speech pieces together when voice
    /// activity packs them, else one at a time.
    pub fn batching(&self) -> Batching {
        match self.vad {
            Some(vad) if vad.pack_into_windows => Batching::SpeechPieces,
            None => Batching::Files,
            _ => Batching::Single,
        }
    }

    pub fn recognizer(&self) -> RecognizerSettings<'a> {
        RecognizerSettings {
            model: self.model,
            quantize: self.quantize,
            decode: self.decode,
            batching: self.batching(),
        }
    }
}

/// The setting a run uses for `model` (see [`QuantizeChoice::resolve`]).
pub fn resolve_quantize(choice: QuantizeChoice, model: &str) -> Quantize {
    choice.resolve(crate::model_source::stored_quantization(model))
}

impl StagePlan {
    /// Plans the stages of a run config, the config's own problems (inputs,
    /// outputs) listed with the stages'.
    pub fn of_config(config: &Config) -> Result<StagePlan, Vec<String>> {
        let mut problems = config.problems();
        match StagePlan::new(&PlanSettings::of_config(config)) {
            Ok(plan) if problems.is_empty() => return Ok(plan),
            Ok(_) => {}
            Err(more) => problems.extend(more),
        }
        Err(problems)
    }

    /// Whether the plan runs a stage of this name (`"align"`, `"diarize"`).
    pub fn has(&self, name: &str) -> bool {
        self.stages.iter().any(|s| s.name == name)
    }

    /// Plans the stages and checks everything that can be checked without
    /// audio or loading the model; `Err` lists every problem.
    pub fn new(settings: &PlanSettings<'_>) -> Result<StagePlan, Vec<String>> {
        let mut problems = Vec::new();
        if settings.device == DeviceName::Gpu && !mlx::is_available(mlx::Device::Gpu) {
            problems.push(
                "device: gpu is not available in this MLX build (a CUDA or Metal build is needed)"
                    .into(),
            );
        }
        let mut stages = vec![StageInfo::new(
            "audio",
            "symphonia decode + rubato resampling, streamed in 1 s blocks".into(),
            Data::File,
            Data::Samples,
        )];
        if let Some(vad) = settings.vad {
            let vad_problems = vad.problems();
            match detector(vad) {
                Ok(detector) if vad_problems.is_empty() => stages.push(StageInfo::new(
                    "vad",
                    detector.describe(vad),
                    Data::Samples,
                    Data::Samples,
                )),
                _ => problems.extend(vad_problems),
            }
        }
        match family_for(settings.model) {
            Some(family) => match family.plan(&settings.recognizer()) {
                Ok(recognizer) => stages.extend(recognizer),
                Err(more) => problems.extend(more),
            },
            None => problems.push(format!("model: no model family reads {:?}", settings.model)),
        }
        stages.extend(settings.after_recognition.iter().cloned());
        if !settings.formats.is_empty() {
            let names: Vec<&str> = settings.formats.iter().map(|f| f.extension()).collect();
            stages.push(StageInfo::new(
                "output",
                names.join(", "),
                Data::Transcript,
                Data::Outputs,
            ));
        }
        let plan = StagePlan { stages };
        if problems.is_empty() {
            problems.extend(plan.chain_problems());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use asr_models::{Activations, Quantization};

    fn settings<'a>(model: &'a str, decode: &'a DecodeOptions) -> PlanSettings<'a> {
        PlanSettings {
            model,
            quantize: Quantize::default(),
            device: DeviceName::Cpu,
            decode,
            vad: None,
            after_recognition: Vec::new(),
            formats: &[Format::Json],
        }
    }

    fn after(name: &'static str, implementation: &str) -> StageInfo {
        StageInfo::new(
            name,
            implementation.into(),
            Data::Transcript,
            Data::Transcript,
        )
    }

    #[test]
    fn the_default_plan_chains_audio_to_outputs() {
        let decode = DecodeOptions::default();
        let plan = StagePlan::new(&settings("tiny.en", &decode)).unwrap();
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name).collect();
        assert_eq!(names, ["audio", "log-mel", "encoder", "decoder", "output"]);
        assert!(plan.chain_problems().is_empty());
        let hooked = PlanSettings {
            after_recognition: vec![
                after("align", "even-words"),
                after("diarize", "two-speakers"),
            ],
            ..settings("tiny.en", &decode)
        };
        let plan = StagePlan::new(&hooked).unwrap();
        assert_eq!(plan.stages[4].implementation, "even-words");
        assert_eq!(plan.stages[5].name, "diarize");
    }

    #[test]
    fn the_decoder_stage_says_what_is_decoded_side_by_side() {
        let note = |decode: &DecodeOptions, vad: Option<&VadOptions>, hook: Option<&str>| {
            let settings = PlanSettings {
                vad,
                after_recognition: hook.map(|name| after("align", name)).into_iter().collect(),
                ..settings("tiny.en", decode)
            };
            let plan = StagePlan::new(&settings).unwrap();
            let decoder = plan.stages.iter().find(|s| s.name == "decoder").unwrap();
            decoder.implementation.clone()
        };
        let greedy = DecodeOptions::default();
        let files = ", first windows of up to 8 files side by side";
        assert!(note(&greedy, None, None).ends_with(files));
        // Stages after recognition run on each transcript after the batch.
        assert!(note(&greedy, None, Some("even-words")).ends_with(files));
        let packed = VadOptions {
            pack_into_windows: true,
            ..VadOptions::default()
        };
        let pieces = ", up to 8 speech pieces side by side";
        assert!(note(&greedy, Some(&packed), Some("even-words")).ends_with(pieces));
        // One at a time: streamed VAD, beam search, sampling first, batch_size 1.
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
        let q = |bits, activations| Quantize {
            weights: Some(Quantization {
                bits,
                group_size: 64,
            }),
            activations,
        };
        let q8_folder = mlx_folder(r#", "quantization": {"bits": 8, "group_size": 64}"#);
        let spec = q8_folder.path().display().to_string();
        for activations in [Activations::F32, Activations::Int8] {
            let plan = StagePlan::new(&PlanSettings {
                quantize: q(8, activations),
                ..settings(&spec, &decode)
            });
            assert!(plan.is_ok(), "{plan:?}");
        }
        // Another width, or an unquantized folder: refused, saying what it holds.
        let problems = StagePlan::new(&PlanSettings {
            quantize: q(4, Activations::F32),
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
            quantize: q(8, Activations::F32),
            ..settings(&spec, &decode)
        })
        .unwrap_err();
        assert!(problems[0].contains("(unquantized)"), "{problems:?}");
        // int8 activations need 8-bit weights.
        let problems = StagePlan::new(&PlanSettings {
            quantize: q(4, Activations::Int8),
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
        let q8 = Quantize {
            weights: Some(Quantization {
                bits: 8,
                group_size: 64,
            }),
            ..Quantize::default()
        };
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
            ["stages: audio produces Samples but encoder needs Features"]
        );
    }
}
