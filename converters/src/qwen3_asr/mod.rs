//! Qwen3-ASR checkpoints (Qwen's original layout or transformers') as our
//! MLX folder:
//!   `config.json`          [`Qwen3AsrConfig`]: transformers' layout (with
//!                          `quantization` when quantized)
//!   `weights.safetensors`  transformers' names and PyTorch layouts
//!                          (`model.audio_tower.*`,
//!                          `model.multi_modal_projector.*`,
//!                          `model.language_model.*`, `lm_head.weight` only
//!                          when untied), f32 unless asked otherwise
//!   tokenizer files        copied as they come (`tokenizer.json`, or
//!                          `vocab.json` + `merges.txt`, with
//!                          `tokenizer_config.json` and the other companion
//!                          files the folder has)
//!
//! Every tensor the config implies must be present in its shape and nothing
//! else, so a folder that converts is one the model loads. Tensors are read,
//! converted and written a block of rows at a time, so a conversion needs
//! the memory of a block, not of the checkpoint.

mod names;
mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use asr_models::quantization::Quantization;
use asr_models::qwen3_asr::config::Qwen3AsrConfig;
use asr_models::ModelConfig;
use mlx::{Array, Dtype};

use crate::error::{ConvertError, Result};
use crate::expected::check_tensor_set;
use crate::safetensors::TensorWriter;
use crate::whisper::{insert_quantized, raw_to_array, WeightOptions, WriteError, COMPANION_FILES};
use source::{read_config, read_tensors, Tensors};

/// Changes whenever the folder this module writes changes, so that cached
/// conversions are made again.
pub const CONVERTER_VERSION: &str = "qwen3-asr-1";

/// The weight files a Hub repo of Qwen3-ASR may hold, preferred first (an
/// index brings its shards).
const WEIGHTS: [&str; 2] = ["model.safetensors", "model.safetensors.index.json"];

/// The files to take from a Hub repo of a Qwen3-ASR model: its config, its
/// weights, and the tokenizer and preprocessing files it has.
pub fn repo_files(listing: &BTreeSet<String>) -> std::result::Result<Vec<String>, String> {
    if !listing.contains("config.json") {
        return Err("no config.json".into());
    }
    let weights = WEIGHTS
        .iter()
        .find(|w| listing.contains(**w))
        .ok_or_else(|| format!("no weights: none of {}", WEIGHTS.join(", ")))?;
    let tokenizer = listing.contains("tokenizer.json")
        || (listing.contains("vocab.json") && listing.contains("merges.txt"));
    if !tokenizer {
        return Err("no tokenizer: neither tokenizer.json nor vocab.json and merges.txt".into());
    }
    Ok(["config.json", weights]
        .into_iter()
        .chain(
            COMPANION_FILES
                .iter()
                .copied()
                .filter(|f| listing.contains(*f)),
        )
        .map(str::to_string)
        .collect())
}

/// Writes the MLX folder of the Qwen3-ASR checkpoint folder `source` into
/// the existing empty folder `out_dir`.
pub fn convert_qwen3_asr(source: &Path, out_dir: &Path, opts: &WeightOptions) -> Result<()> {
    if let Some(q) = opts.quantization {
        q.check().map_err(WriteError::from)?;
    }
    let (mut config, layout) = read_config(source)?;
    let tokenizer = tokenizer_files(source)?;
    let mut tensors = read_tensors(source, layout)?;
    drop_tied_head(&config, &mut tensors)?;
    let shapes = tensors
        .by_name
        .iter()
        .map(|(name, l)| {
            (
                name.clone(),
                l.entry.shape.iter().map(|&d| d as i32).collect(),
            )
        })
        .collect();
    check_tensor_set(&tensors.origin, &names::expected_tensors(&config), &shapes)?;
    write_weights(
        &tensors,
        &out_dir.join("weights.safetensors"),
        opts,
        BLOCK_ELEMENTS,
    )?;
    config.quantization = opts.quantization;
    let config_path = out_dir.join("config.json");
    std::fs::write(&config_path, config.to_json()).map_err(ConvertError::io(&config_path))?;
    for name in tokenizer {
        let from = source.join(name);
        std::fs::copy(&from, out_dir.join(name)).map_err(ConvertError::io(&from))?;
    }
    Ok(())
}

/// The companion files of `source` to copy, refusing a folder without a
/// tokenizer the model can read.
fn tokenizer_files(source: &Path) -> Result<Vec<&'static str>> {
    let present: Vec<&str> = COMPANION_FILES
        .iter()
        .copied()
        .filter(|f| source.join(f).is_file())
        .collect();
    let has = |f: &str| present.contains(&f);
    if !(has("tokenizer.json") || (has("vocab.json") && has("merges.txt"))) {
        return Err(ConvertError::format(
            source,
            "no tokenizer: neither tokenizer.json nor vocab.json and merges.txt in the folder",
        ));
    }
    Ok(present)
}

/// Leaves out the output layer when the config ties it to the embedding
/// table (Qwen's checkpoints store a copy): it must have the table's shape,
/// and differing values are reported, as the model uses the table.
fn drop_tied_head(config: &Qwen3AsrConfig, tensors: &mut Tensors) -> Result<()> {
    if !config.text_config.tie_word_embeddings {
        return Ok(());
    }
    let Some(head) = tensors.by_name.remove(names::LM_HEAD) else {
        return Ok(());
    };
    let head_path = tensors.path(&head);
    let Some(table) = tensors.by_name.get(names::EMBEDDING) else {
        // Reported as missing with the other tensors.
        return Ok(());
    };
    if head.entry.shape != table.entry.shape {
        return Err(ConvertError::format(
            head_path,
            format!(
                "{} is {:?} but tied to {} of {:?}",
                head.name, head.entry.shape, table.name, table.entry.shape
            ),
        ));
    }
    for rows in row_blocks(&head.entry.shape, BLOCK_ELEMENTS) {
        let block = |l: &source::Location| tensors.files[l.file].read_rows(&l.name, rows.clone());
        if block(&head)? != block(table)? {
            tracing::warn!(
                file = %head_path.display(),
                "{} differs from {} although the config ties them: the embedding table is used",
                head.name,
                table.name
            );
            break;
        }
    }
    Ok(())
}

/// Elements converted at a time: 64 MB in f32.
const BLOCK_ELEMENTS: usize = 1 << 24;

/// The blocks of whole rows (along the first axis) of at most `elements`
/// elements (or one row) a tensor of `shape` is converted in.
fn row_blocks(shape: &[usize], elements: usize) -> impl Iterator<Item = Range<usize>> {
    let rows = shape.first().copied().unwrap_or(1);
    let per_row: usize = shape.iter().skip(1).product();
    let step = (elements / per_row.max(1)).max(1);
    (0..rows)
        .step_by(step)
        .map(move |first| first..(first + step).min(rows))
}

/// Whether tensor `name` of `shape` is quantized with `q`: every matrix
/// (linear layers' weights, the embedding table) whose rows divide into
/// groups.
fn quantized_as(name: &str, shape: &[usize], q: Option<Quantization>) -> Option<Quantization> {
    q.filter(|q| {
        name.ends_with(".weight")
            && shape.len() == 2
            && shape[1].is_multiple_of(q.group_size as usize)
    })
}

/// The safetensors dtype of the arrays written.
fn file_dtype(dtype: Dtype) -> Option<safetensors::Dtype> {
    Some(match dtype {
        Dtype::F32 => safetensors::Dtype::F32,
        Dtype::F16 => safetensors::Dtype::F16,
        Dtype::BF16 => safetensors::Dtype::BF16,
        Dtype::U32 => safetensors::Dtype::U32,
        _ => return None,
    })
}

/// Writes every tensor of `tensors` into `path`, blocks of rows of at most
/// `block_elements` elements at a time.
fn write_weights(
    tensors: &Tensors,
    path: &Path,
    opts: &WeightOptions,
    block_elements: usize,
) -> Result<()> {
    let float = file_dtype(opts.dtype.mlx()).expect("output dtypes are floats");
    let mut plan = Vec::new();
    for (name, location) in &tensors.by_name {
        let shape = &location.entry.shape;
        match quantized_as(name, shape, opts.quantization) {
            Some(q) => {
                let prefix = name.strip_suffix(".weight").unwrap_or(name);
                let (rows, cols) = (shape[0], shape[1]);
                let groups = cols / q.group_size as usize;
                let packed = cols * q.bits as usize / 32;
                plan.push((name.clone(), safetensors::Dtype::U32, vec![rows, packed]));
                plan.push((format!("{prefix}.scales"), float, vec![rows, groups]));
                plan.push((format!("{prefix}.biases"), float, vec![rows, groups]));
            }
            None => plan.push((name.clone(), float, shape.clone())),
        }
    }
    let metadata = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
    let mut writer = TensorWriter::create(path, &plan, &metadata)?;
    // Rows are independent (quantization groups run along them), so each
    // block converts on its own.
    for (name, location) in &tensors.by_name {
        let file = &tensors.files[location.file];
        let quantization = quantized_as(name, &location.entry.shape, opts.quantization);
        for rows in row_blocks(&location.entry.shape, block_elements) {
            let block = raw_to_array(&file.read_rows(&location.name, rows)?)
                .and_then(|a| a.astype(opts.dtype.mlx()))
                .map_err(|e| ConvertError::mlx(name, e))?;
            let mut out = BTreeMap::new();
            match quantization {
                Some(q) => insert_quantized(&mut out, name, &block, q)
                    .map_err(|e| ConvertError::mlx(name, e))?,
                None => {
                    out.insert(name.clone(), block);
                }
            }
            for (name, array) in out {
                write_array(&mut writer, &name, &array)?;
            }
        }
    }
    writer.finish()
}

fn write_array(writer: &mut TensorWriter, name: &str, array: &Array) -> Result<()> {
    let dtype = file_dtype(array.dtype()).ok_or_else(|| {
        ConvertError::mlx(
            name,
            mlx::Error::Mlx(format!("unexpected dtype {:?}", array.dtype())),
        )
    })?;
    let shape: Vec<usize> = array.shape().iter().map(|&d| d as usize).collect();
    let bytes = array.to_bytes().map_err(|e| ConvertError::mlx(name, e))?;
    writer.write(name, dtype, &shape, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of a few rows give the same file as whole tensors, quantized
    /// or not.
    #[test]
    fn blocks_of_rows_write_what_whole_tensors_do() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_asr/hf");
        let (_, layout) = read_config(&source).unwrap();
        let tensors = read_tensors(&source, layout).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let q4 = Quantization {
            group_size: 32,
            bits: 4,
        };
        for quantization in [None, Some(q4)] {
            let opts = WeightOptions {
                quantization,
                ..WeightOptions::default()
            };
            let whole = dir.path().join("whole.safetensors");
            let blocks = dir.path().join("blocks.safetensors");
            write_weights(&tensors, &whole, &opts, BLOCK_ELEMENTS).unwrap();
            // 100 elements: one to three rows of a matrix.
            write_weights(&tensors, &blocks, &opts, 100).unwrap();
            assert!(std::fs::read(&whole).unwrap() == std::fs::read(&blocks).unwrap());
        }
        assert_eq!(
            row_blocks(&[5, 40], 100).collect::<Vec<_>>(),
            [0..2, 2..4, 4..5]
        );
        assert_eq!(row_blocks(&[3, 400], 100).count(), 3);
        assert_eq!(
            row_blocks(&[7], 100).map(|r| r.len()).collect::<Vec<_>>(),
            [7]
        );
    }
}
