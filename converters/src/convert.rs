//! `pipeline convert` as one call: which converter reads a checkpoint of
//! each family, with which weight options, into which folder. The CLI and
//! the Python package both call [`convert`].

use std::path::Path;
use std::str::FromStr;

use asr_models::{Quantization, Quantize};

use crate::out_folder::convert_into_folder;
use crate::parakeet::convert_parakeet;
use crate::qwen3_asr::convert_qwen3_asr;
use crate::whisper::{convert_whisper, OutputDtype, WeightOptions, WriteOptions};
use crate::{segmentation, silero, speaker_encoder, wav2vec2, ConvertError};

/// What a checkpoint holds, and so which converter reads it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    Whisper,
    SileroVad,
    PyannoteSegmentation,
    Resemblyzer,
    Wav2vec2,
    Parakeet,
    Qwen3Asr,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Whisper,
        Family::SileroVad,
        Family::PyannoteSegmentation,
        Family::Resemblyzer,
        Family::Wav2vec2,
        Family::Parakeet,
        Family::Qwen3Asr,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Family::Whisper => "whisper",
            Family::SileroVad => "silero-vad",
            Family::PyannoteSegmentation => "pyannote-segmentation",
            Family::Resemblyzer => "resemblyzer",
            Family::Wav2vec2 => "wav2vec2",
            Family::Parakeet => "parakeet",
            Family::Qwen3Asr => "qwen3-asr",
        }
    }

    /// Whether its weights may be written in another dtype or quantized.
    fn takes_weight_options(self) -> bool {
        matches!(self, Family::Whisper | Family::Parakeet | Family::Qwen3Asr)
    }
}

impl FromStr for Family {
    type Err = String;

    fn from_str(name: &str) -> Result<Family, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                format!("unknown family `{name}` (one of {})", names.join(", "))
            })
    }
}

impl FromStr for OutputDtype {
    type Err = String;

    fn from_str(name: &str) -> Result<OutputDtype, String> {
        match name {
            "f32" => Ok(OutputDtype::F32),
            "f16" => Ok(OutputDtype::F16),
            "bf16" => Ok(OutputDtype::BF16),
            _ => Err(format!("unknown dtype `{name}` (one of f32, f16, bf16)")),
        }
    }
}

/// One conversion: `from` into the MLX model folder `out`.
#[derive(Clone, Debug)]
pub struct ConvertRequest<'a> {
    pub from: &'a Path,
    pub out: &'a Path,
    pub family: Family,
    /// Floating-point type of the written weights (Whisper: f16 when unset;
    /// Parakeet and Qwen3-ASR: f32); other families are written in f32.
    pub dtype: Option<OutputDtype>,
    /// Affine quantization of linear and embedding weights (Whisper,
    /// Parakeet, Qwen3-ASR).
    pub quantize: Option<Quantize>,
    /// Weights per quantization group.
    pub group_size: i32,
    /// Replace an existing output folder that a conversion wrote.
    pub force: bool,
}

impl<'a> ConvertRequest<'a> {
    /// A conversion with the CLI's defaults.
    pub fn new(from: &'a Path, out: &'a Path, family: Family) -> ConvertRequest<'a> {
        ConvertRequest {
            from,
            out,
            family,
            dtype: None,
            quantize: None,
            group_size: Quantization::DEFAULT_GROUP_SIZE,
            force: false,
        }
    }

    fn quantization(&self) -> Option<Quantization> {
        self.quantize
            .and_then(|q| q.with_group_size(self.group_size).weights)
    }

    fn weight_options(&self) -> WeightOptions {
        WeightOptions {
            dtype: self.dtype.unwrap_or(OutputDtype::F32),
            quantization: self.quantization(),
        }
    }
}

/// Converts as `request` says; `progress(done, total)` hears of the
/// tensors written (Whisper). The output appears only when complete.
/// Returns what was written, in the CLI's words.
pub fn convert(
    request: &ConvertRequest<'_>,
    progress: &dyn Fn(usize, usize),
) -> Result<String, ConvertError> {
    let ConvertRequest {
        from, out, family, ..
    } = *request;
    if !family.takes_weight_options() && (request.dtype.is_some() || request.quantize.is_some()) {
        return Err(ConvertError::format(
            from,
            "--dtype and --quantize apply to Whisper, Parakeet and Qwen3-ASR checkpoints only; \
             this family is written in f32",
        ));
    }
    Quantization::check_group_size(request.group_size)
        .map_err(|e| ConvertError::format(from, format!("group size: {e}")))?;
    let weights = request.weight_options();
    let write: Box<FolderWriter> = match family {
        Family::Whisper => return convert_whisper_checkpoint(request, progress),
        Family::Parakeet => Box::new(|from, out| convert_parakeet(from, out, &weights)),
        Family::Qwen3Asr => Box::new(|from, out| convert_qwen3_asr(from, out, &weights)),
        Family::SileroVad => Box::new(silero::convert_silero),
        Family::PyannoteSegmentation => Box::new(segmentation::convert_segmentation),
        Family::Resemblyzer => Box::new(speaker_encoder::convert_resemblyzer),
        Family::Wav2vec2 if from.is_file() => Box::new(|from, out| {
            wav2vec2::convert_torchaudio_wav2vec2(from, &wav2vec2::TORCHAUDIO_ENGLISH_LABELS, out)
        }),
        Family::Wav2vec2 => Box::new(wav2vec2::convert_wav2vec2),
    };
    convert_into_folder(from, out, request.force, write)?;
    Ok(format!("wrote {}", out.display()))
}

/// A converter writing a checkpoint (first path) into a folder (second).
type FolderWriter<'a> = dyn FnOnce(&Path, &Path) -> Result<(), ConvertError> + 'a;

/// A Whisper checkpoint, f16 unless asked, with progress over its tensors.
fn convert_whisper_checkpoint(
    request: &ConvertRequest<'_>,
    progress: &dyn Fn(usize, usize),
) -> Result<String, ConvertError> {
    let opts = WriteOptions {
        dtype: request.dtype.unwrap_or(OutputDtype::F16),
        quantization: request.quantization(),
        force: request.force,
    };
    let loaded = convert_whisper(request.from, request.out, &opts, progress)?;
    tracing::info!(layout = ?loaded.layout, dims = ?loaded.weights.dims, "converted");
    Ok(format!(
        "wrote {} ({} tensors from a {:?} checkpoint)",
        request.out.display(),
        loaded.weights.tensors.len(),
        loaded.layout
    ))
}
