//! `pipeline convert`: a Whisper, Parakeet or Qwen3-ASR checkpoint, or the
//! weights of a voice, speaker or alignment model, written as an MLX model
//! folder.

use std::path::{Path, PathBuf};

use anyhow::Result;
use asr_converters::out_folder::convert_into_folder;
use asr_converters::parakeet::convert_parakeet;
use asr_converters::qwen3_asr::convert_qwen3_asr;
use asr_converters::whisper::{convert_whisper, OutputDtype, WeightOptions, WriteOptions};
use asr_converters::{segmentation, silero, speaker_encoder, wav2vec2, ConvertError};
use asr_pipeline::{Quantization, Quantize};

use super::progress::progress_bar;

pub const LONG_HELP: &str =
    "Convert a Whisper checkpoint (or, with --family, another model's) into an
MLX model folder.

Input formats (--from):
  CTranslate2 model folder   model.bin + config.json, as faster-whisper uses
                             (float32/float16/bfloat16/int8/int16 weights)
  Hugging Face model folder  config.json + model.safetensors or
                             pytorch_model.bin, either possibly sharded
                             (*.index.json); alignment heads from
                             generation_config.json
  openai-whisper checkpoint  a .pt file holding {dims, model_state_dict}

PyTorch files are read by a pickle reader that runs no code: only tensor,
storage and container globals are accepted, anything else is refused by name.
Legacy (pre-1.6, non-zip) torch files are refused: re-save them with torch.

Output (--out): a folder that this project and Python mlx-whisper both load:
  config.json          openai-whisper ModelDimensions keys, model_type, and
                       `quantization` {group_size, bits} when quantized
  weights.safetensors  mlx-whisper names; conv weights channels-last
  tokenizer files      copied from the input folder when present

Parakeet (--family parakeet), f32 unless --dtype, --quantize applying to
linear layers:
  NVIDIA .nemo file          a tar (possibly gzip'd) of model_config.yaml and
                             model_weights.ckpt; CTC, RNN-T, TDT and hybrid
                             TDT-CTC models
  mlx-community folder       config.json (NeMo's config) + model.safetensors
                             in parakeet-mlx's names, checked and rewritten
  transformers folder        ParakeetForCTC/RNNT/TDT (config.json,
                             model.safetensors, tokenizer.json,
                             preprocessor_config.json)
  Output: config.json (NeMo's config, `quantization` when quantized) and
  weights.safetensors in parakeet-mlx's names and MLX layouts.

Qwen3-ASR (--family qwen3-asr), f32 unless --dtype, --quantize applying to
linear layers and the embedding table:
  Qwen's folder              Qwen/Qwen3-ASR-0.6B, -1.7B: config.json (the
                             model under thinker_config), model.safetensors
                             or shards with model.safetensors.index.json
                             (bf16), vocab.json + merges.txt
  transformers folder        Qwen3ASRForConditionalGeneration (-hf repos):
                             config.json, model.safetensors (or shards),
                             tokenizer files
  Output: config.json (transformers' Qwen3ASRConfig, `quantization` when
  quantized), weights.safetensors in transformers' names and PyTorch
  layouts, the tokenizer files copied.

Other families (--family), written in f32 without quantization:
  silero-vad             Silero VAD v6's 16 kHz ONNX export (its weights
                         are read; nothing in the file runs)
  pyannote-segmentation  pyannote's 2022 segmentation checkpoint (PyanNet,
                         a Lightning .bin/.ckpt), the sinc filters computed
  resemblyzer            Resemblyzer's pretrained.pt (legacy torch format)
  wav2vec2               a Hugging Face Wav2Vec2ForCTC folder (config.json +
                         model.safetensors or pytorch_model.bin, vocab.json),
                         or a torchaudio ASR bundle's state dict file (torch
                         save of model.state_dict(); English bundle labels),
                         weight norm folded

The output appears only when complete (written to a temporary folder, then
renamed); an existing output is replaced only with --force, and only when
it holds nothing but what a conversion writes. The output may not be the
source, hold it or lie inside it.";

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Checkpoint file or model folder to read.
    #[arg(long = "from", value_name = "PATH")]
    from: PathBuf,
    /// Model folder to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// What the checkpoint holds.
    #[arg(long, value_enum, default_value_t = Family::Whisper)]
    family: Family,
    /// Floating-point type of the written weights (Whisper: f16 when unset;
    /// Parakeet and Qwen3-ASR: f32).
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
    /// Affine-quantize linear and embedding weights (norms, convolutions and
    /// positional tables stay unquantized): none, q8, q4, or int8 (stored as
    /// q8; int8 activations are a run setting).
    #[arg(long, value_name = "NAME")]
    quantize: Option<Quantize>,
    /// Quantization group size (32, 64 or 128).
    #[arg(long, default_value_t = Quantization::DEFAULT_GROUP_SIZE, value_parser = parse_group_size)]
    group_size: i32,
    /// Replace an existing output folder that a conversion wrote.
    #[arg(long)]
    force: bool,
}

#[derive(Copy, Clone, PartialEq, clap::ValueEnum)]
enum Family {
    Whisper,
    SileroVad,
    PyannoteSegmentation,
    Resemblyzer,
    Wav2vec2,
    Parakeet,
    Qwen3Asr,
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum DtypeArg {
    F32,
    F16,
    Bf16,
}

fn parse_group_size(text: &str) -> Result<i32, String> {
    let n = text.parse().map_err(|e| format!("{e}"))?;
    Quantization::check_group_size(n).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Converts `--from` into `--out`, with a progress bar over the tensors.
pub fn run(args: ConvertArgs, quiet: bool) -> Result<()> {
    let convert: fn(&Path, &Path) -> Result<(), ConvertError> = match args.family {
        Family::Whisper => return convert_whisper_checkpoint(args, quiet),
        Family::Parakeet => return convert_family_checkpoint(args, convert_parakeet),
        Family::Qwen3Asr => return convert_family_checkpoint(args, convert_qwen3_asr),
        Family::SileroVad => silero::convert_silero,
        Family::PyannoteSegmentation => segmentation::convert_segmentation,
        Family::Resemblyzer => speaker_encoder::convert_resemblyzer,
        Family::Wav2vec2 if args.from.is_file() => |from, out| {
            wav2vec2::convert_torchaudio_wav2vec2(from, &wav2vec2::TORCHAUDIO_ENGLISH_LABELS, out)
        },
        Family::Wav2vec2 => wav2vec2::convert_wav2vec2,
    };
    if args.dtype.is_some() || args.quantize.is_some() {
        anyhow::bail!("--dtype and --quantize apply to Whisper, Parakeet and Qwen3-ASR checkpoints only; this family is written in f32");
    }
    write_folder(&args, convert)
}

fn output_dtype(arg: DtypeArg) -> OutputDtype {
    match arg {
        DtypeArg::F32 => OutputDtype::F32,
        DtypeArg::F16 => OutputDtype::F16,
        DtypeArg::Bf16 => OutputDtype::BF16,
    }
}

/// The weights' dtype (f32 unless `--dtype`) and quantization for the
/// families that take both and default to f32.
fn f32_unless_asked(args: &ConvertArgs) -> (OutputDtype, Option<Quantization>) {
    (
        output_dtype(args.dtype.unwrap_or(DtypeArg::F32)),
        args.quantize
            .and_then(|q| q.with_group_size(args.group_size).weights),
    )
}

/// A Parakeet or Qwen3-ASR checkpoint, f32 unless asked.
fn convert_family_checkpoint(
    args: ConvertArgs,
    convert: fn(&Path, &Path, &WeightOptions) -> Result<(), ConvertError>,
) -> Result<()> {
    let (dtype, quantization) = f32_unless_asked(&args);
    let opts = WeightOptions {
        dtype,
        quantization,
    };
    write_folder(&args, |from, out| convert(from, out, &opts))
}

/// Converts `--from` into `--out` with `convert`.
fn write_folder(
    args: &ConvertArgs,
    convert: impl FnOnce(&Path, &Path) -> Result<(), ConvertError>,
) -> Result<()> {
    convert_into_folder(&args.from, &args.out, args.force, convert)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn convert_whisper_checkpoint(args: ConvertArgs, quiet: bool) -> Result<()> {
    let opts = WriteOptions {
        dtype: output_dtype(args.dtype.unwrap_or(DtypeArg::F16)),
        quantization: args
            .quantize
            .and_then(|q| q.with_group_size(args.group_size).weights),
        force: args.force,
    };
    let bar = progress_bar(quiet, "{msg} [{bar:40}] {pos}/{len} tensors");
    bar.set_message("converting");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let loaded = convert_whisper(&args.from, &args.out, &opts, &progress)?;
    bar.finish_and_clear();
    tracing::info!(layout = ?loaded.layout, dims = ?loaded.weights.dims, "converted");
    eprintln!(
        "wrote {} ({} tensors from a {:?} checkpoint)",
        args.out.display(),
        loaded.weights.tensors.len(),
        loaded.layout
    );
    Ok(())
}
