//! `pipeline run`'s flags that replace settings of the config file.

use anyhow::Result;
use asr_pipeline::{Config, DeviceName, Format, Task};

use super::RunArgs;
use crate::cli::check::checked_plan;

#[derive(Copy, Clone, clap::ValueEnum)]
pub enum TaskArg {
    Transcribe,
    Translate,
}

#[derive(Copy, Clone, clap::ValueEnum)]
pub enum FormatArg {
    Txt,
    Json,
    Srt,
    Vtt,
    Tsv,
    Rttm,
}

#[derive(Copy, Clone, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Gpu,
}

/// The config file with command-line overrides applied.
pub fn run_config(args: &RunArgs) -> Result<Config> {
    let mut config = Config::from_file(&args.config)?;
    if !args.input.is_empty() {
        config.inputs = args.input.clone();
    }
    if let Some(dir) = &args.output_dir {
        config.output_dir = Some(dir.clone());
    }
    if !args.formats.is_empty() {
        config.formats = args
            .formats
            .iter()
            .map(|f| match f {
                FormatArg::Txt => Format::Txt,
                FormatArg::Json => Format::Json,
                FormatArg::Srt => Format::Srt,
                FormatArg::Vtt => Format::Vtt,
                FormatArg::Tsv => Format::Tsv,
                FormatArg::Rttm => Format::Rttm,
            })
            .collect();
    }
    if let Some(model) = &args.model {
        config.model = model.clone();
    }
    if let Some(device) = args.device {
        config.device = match device {
            DeviceArg::Cpu => DeviceName::Cpu,
            DeviceArg::Gpu => DeviceName::Gpu,
        };
    }
    if let Some(language) = &args.language {
        config.decode.language = Some(language.clone());
    }
    if let Some(task) = args.task {
        config.decode.task = match task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        };
    }
    checked_plan(&args.config, &config)?;
    Ok(config)
}
