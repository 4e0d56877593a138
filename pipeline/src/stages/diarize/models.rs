//! The MLX models behind the chunked diarizer: pyannote's segmentation
//! network and Resemblyzer's speaker encoder, found by registry name or
//! path and converted into the cache on first use.

use std::path::{Path, PathBuf};

use asr_converters::{registry, segmentation, speaker_encoder, ConvertError};
use asr_models::segmentation::Segmentation;
use asr_models::speaker_encoder::SpeakerEncoder;
use mlx::Array;

use super::chunked::{ChunkedDiarizer, ChunkedSettings, LocalSegmenter, SpeakerEmbedder};
use super::chunks::FrameGrid;
use super::DiarizationOptions;
use crate::stages::StageError;

fn stage_error(message: impl std::fmt::Display) -> StageError {
    StageError {
        stage: "diarize".into(),
        message: message.to_string(),
    }
}

/// How a model family's checkpoints become MLX folders.
struct Converter {
    /// The registry asset of its published weights.
    asset: &'static str,
    /// Changes whenever the converted folder would.
    version: &'static str,
    convert: fn(&Path, &Path) -> Result<(), ConvertError>,
}

/// The MLX folder `spec` names: the registry asset (fetched and converted
/// once), a converted folder, or a checkpoint file converted once into the
/// cache.
fn model_folder(spec: &str, converter: &Converter) -> Result<PathBuf, StageError> {
    // A conversion's arrays are not held for the load that follows.
    mlx::unnoted(|| convert_once(spec, converter))
}

fn convert_once(spec: &str, converter: &Converter) -> Result<PathBuf, StageError> {
    let path = Path::new(spec);
    let cache = registry::cache_dir();
    let asset = converter.asset;
    let folder = if spec == asset {
        registry::fetch_converted_asset_in(asset, converter.version, &cache, converter.convert)
    } else if path.join("config.json").is_file() {
        Ok(path.to_path_buf())
    } else if path.is_file() {
        registry::convert_file_cached(path, converter.version, &cache, converter.convert)
    } else {
        return Err(stage_error(format!(
            "{spec}: not {asset}, a converted model folder or a checkpoint file"
        )));
    };
    folder.map_err(stage_error)
}

/// The diarizer `opts` describe, its models loaded.
pub fn load_diarizer(opts: &DiarizationOptions) -> Result<ChunkedDiarizer, StageError> {
    let segmentation_dir = model_folder(
        &opts.segmentation,
        &Converter {
            asset: segmentation::ASSET,
            version: segmentation::CONVERTER_VERSION,
            convert: segmentation::convert_segmentation,
        },
    )?;
    let embedding_dir = model_folder(
        &opts.embedding,
        &Converter {
            asset: speaker_encoder::ASSET,
            version: speaker_encoder::CONVERTER_VERSION,
            convert: speaker_encoder::convert_resemblyzer,
        },
    )?;
    let segmenter = MlxSegmenter::load(&segmentation_dir)?;
    let embedder = MlxEmbedder {
        model: SpeakerEncoder::load(&embedding_dir).map_err(stage_error)?,
    };
    let settings = ChunkedSettings::new(opts, &segmenter.grid);
    Ok(ChunkedDiarizer::new(
        Box::new(segmenter),
        Box::new(embedder),
        settings,
        opts.describe(),
    ))
}

struct MlxSegmenter {
    model: Segmentation,
    grid: FrameGrid,
}

impl MlxSegmenter {
    fn load(dir: &Path) -> Result<MlxSegmenter, StageError> {
        let model = Segmentation::load(dir).map_err(stage_error)?;
        let timing = model.frame_timing();
        let chunk = model.chunk_samples();
        if model.sample_rate() != crate::stages::audio::SAMPLE_RATE as i32
            || timing.step.fract() != 0.0
        {
            return Err(stage_error(format!(
                "{}: a segmentation model at {} Hz with frames every {} samples; \
                 16 kHz and whole-sample frame steps are needed",
                dir.display(),
                model.sample_rate(),
                timing.step
            )));
        }
        let grid = FrameGrid {
            chunk: chunk as usize,
            frames: model.frames(chunk) as usize,
            step: timing.step as usize,
            first_center: timing.center(0),
        };
        Ok(MlxSegmenter { model, grid })
    }
}

impl LocalSegmenter for MlxSegmenter {
    fn grid(&self) -> FrameGrid {
        self.grid
    }

    fn speakers(&self) -> usize {
        self.model.speakers() as usize
    }

    fn segment(&self, chunks: &[&[f32]]) -> Result<Vec<f32>, StageError> {
        let flat: Vec<f32> = chunks.concat();
        let input = Array::from_slice(&flat, &[chunks.len() as i32, self.grid.chunk as i32])
            .map_err(stage_error)?;
        self.model
            .forward(&input)
            .and_then(|p| p.to_vec::<f32>())
            .map_err(stage_error)
    }
}

struct MlxEmbedder {
    model: SpeakerEncoder,
}

impl SpeakerEmbedder for MlxEmbedder {
    fn dims(&self) -> usize {
        self.model.embedding_dims()
    }

    fn embed(&self, utterances: &[&[f32]]) -> Result<Vec<f32>, StageError> {
        self.model
            .embed_utterances(utterances)
            .and_then(|e| e.to_vec::<f32>())
            .map_err(stage_error)
    }
}
