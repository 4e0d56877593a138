//! `pipeline convert`: a Whisper, Parakeet or Qwen3-ASR checkpoint, or the
//! weights of a voice, speaker or alignment model, written as an MLX model
//! folder.

use std::path::PathBuf;

use anyhow::Result;
use asr_converters::convert::{convert, ConvertRequest, Family};
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
    #[arg(long, default_value = "whisper", value_parser = family_names())]
    family: String,
    /// Floating-point type of the written weights (Whisper: f16 when unset;
    /// Parakeet and Qwen3-ASR: f32).
    #[arg(long, value_parser = ["f32", "f16", "bf16"])]
    dtype: Option<String>,
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

fn family_names() -> clap::builder::PossibleValuesParser {
    Family::ALL.map(Family::name).into()
}

fn parse_group_size(text: &str) -> Result<i32, String> {
    let n = text.parse().map_err(|e| format!("{e}"))?;
    Quantization::check_group_size(n).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Converts `--from` into `--out`, with a progress bar over the tensors.
pub fn run(args: ConvertArgs, quiet: bool) -> Result<()> {
    let request = ConvertRequest {
        dtype: args
            .dtype
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        quantize: args.quantize,
        group_size: args.group_size,
        force: args.force,
        ..ConvertRequest::new(
            &args.from,
            &args.out,
            args.family.parse().map_err(anyhow::Error::msg)?,
        )
    };
    let bar = progress_bar(quiet, "{msg} [{bar:40}] {pos}/{len} tensors");
    bar.set_message("converting");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let wrote = convert(&request, &progress)?;
    bar.finish_and_clear();
    eprintln!("{wrote}");
    Ok(())
}
