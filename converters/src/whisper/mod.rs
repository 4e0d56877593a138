//! Whisper checkpoints from any published layout → one canonical tensor set
//! (mlx-whisper's names and shapes), ready to be written as MLX weights.

mod hf_dims;
mod load;
mod names;
mod published_heads;
mod write;

use std::collections::BTreeMap;

pub use load::{load_whisper, LoadedWhisper, COMPANION_FILES};
pub use names::{expected_tensors, is_quantizable, rule, Rule, SourceLayout};
pub(crate) use write::insert_quantized;
pub use write::{
    raw_to_array, write_mlx_whisper, OutputDtype, WeightOptions, WriteError, WriteOptions,
};

use asr_models::whisper::WhisperDims;

use crate::tensor::RawTensor;

/// A Whisper model in canonical names, independent of where it came from.
#[derive(Debug, Clone)]
pub struct WhisperWeights {
    pub dims: WhisperDims,
    pub tensors: BTreeMap<String, RawTensor>,
    /// `(layer, head)` pairs whose cross-attention aligns text with audio.
    pub alignment_heads: Option<Vec<[usize; 2]>>,
}

/// Why a checkpoint could not be mapped onto the canonical layout.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("invalid model dimensions: {0}")]
    Dims(String),
    #[error(
        "checkpoint does not map onto Whisper:{}{}{}{}",
        list("source tensors not used", unused),
        list("canonical tensors missing", missing),
        list("tensors with unexpected shapes", bad_shapes),
        list("fused parts that must be zero but are not", nonzero)
    )]
    Incomplete {
        unused: Vec<String>,
        missing: Vec<String>,
        bad_shapes: Vec<String>,
        nonzero: Vec<String>,
    },
    #[error("{name}: {reason}")]
    Tensor { name: String, reason: String },
}

fn list(title: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    const SHOWN: usize = 12;
    let more = items.len().saturating_sub(SHOWN);
    let shown = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let tail = if more > 0 {
        format!(" (+{more} more)")
    } else {
        String::new()
    };
    format!("\n  {title} ({}): {shown}{tail}", items.len())
}

/// Reads the checkpoint at `from` and writes it as an MLX model folder at
/// `out`; returns what was read (dimensions, source layout).
pub fn convert_whisper(
    from: &std::path::Path,
    out: &std::path::Path,
    opts: &WriteOptions,
    progress: &dyn Fn(usize, usize),
) -> crate::Result<LoadedWhisper> {
    // Fail before the (slow) read.
    crate::out_folder::check_apart_from_source(from, out)?;
    write::check(opts, out)?;
    let loaded = load_whisper(from)?;
    write_mlx_whisper(
        &loaded.weights,
        out,
        opts,
        &loaded.companion_files,
        progress,
    )?;
    Ok(loaded)
}

/// Maps every source tensor by `layout`'s rules and checks that the result is
/// exactly the model `dims` describes: every source tensor consumed, every
/// canonical tensor produced with the right shape.
pub fn canonicalize(
    layout: SourceLayout,
    source: BTreeMap<String, RawTensor>,
    dims: &WhisperDims,
) -> Result<BTreeMap<String, RawTensor>, MappingError> {
    dims.validate().map_err(MappingError::Dims)?;
    check_layer_count(dims, source.len())?;
    let mut out = BTreeMap::new();
    let (mut unused, mut nonzero) = (Vec::new(), Vec::new());
    for (name, tensor) in source {
        match rule(layout, &name) {
            None => unused.push(name),
            Some(Rule::Keep(target)) => {
                out.insert(target, tensor);
            }
            Some(Rule::Conv(target)) => {
                let conv = conv_to_channels_last(&tensor)
                    .map_err(|reason| MappingError::Tensor { name, reason })?;
                out.insert(target, conv);
            }
            Some(Rule::Split(targets)) => {
                let parts =
                    split_rows(&tensor, targets.len()).map_err(|reason| MappingError::Tensor {
                        name: name.clone(),
                        reason,
                    })?;
                for (target, part) in targets.into_iter().zip(parts) {
                    match target {
                        Some(target) => {
                            out.insert(target, part);
                        }
                        None if !is_all_zero(&part) => nonzero.push(name.clone()),
                        None => {}
                    }
                }
            }
            Some(Rule::Recomputed | Rule::TiedOutput | Rule::Setting) => {}
        }
    }
    let expected = expected_tensors(dims);
    let mut missing = Vec::new();
    let mut bad_shapes = Vec::new();
    for (name, shape) in &expected {
        match out.get(name) {
            None => missing.push(name.clone()),
            Some(t) if &t.shape != shape => {
                bad_shapes.push(format!("{name} {:?} (expected {shape:?})", t.shape))
            }
            Some(_) => {}
        }
    }
    let expected_names: std::collections::BTreeSet<&str> =
        expected.iter().map(|(n, _)| n.as_str()).collect();
    unused.extend(
        out.keys()
            .filter(|n| !expected_names.contains(n.as_str()))
            .cloned(),
    );
    if !(unused.is_empty() && missing.is_empty() && bad_shapes.is_empty() && nonzero.is_empty()) {
        return Err(MappingError::Incomplete {
            unused,
            missing,
            bad_shapes,
            nonzero,
        });
    }
    Ok(out)
}

/// Refuses dimensions declaring more layers than the checkpoint has tensors
/// (every layer holds several) before the per-layer list of expected
/// tensors is built: a million declared layers would take gigabytes.
fn check_layer_count(dims: &WhisperDims, tensors: usize) -> Result<(), MappingError> {
    let layers = i64::from(dims.n_audio_layer) + i64::from(dims.n_text_layer);
    if layers > tensors as i64 {
        return Err(MappingError::Dims(format!(
            "{} encoder and {} decoder layers declared, but the checkpoint holds only {tensors} tensors",
            dims.n_audio_layer, dims.n_text_layer
        )));
    }
    Ok(())
}

/// `[out, in, k]` (PyTorch) → `[out, k, in]` (MLX).
fn conv_to_channels_last(t: &RawTensor) -> Result<RawTensor, String> {
    let [o, i, k] = t.shape[..] else {
        return Err(format!("conv weight must be 3-D, shape is {:?}", t.shape));
    };
    let es = t.dtype.size();
    let mut data = vec![0u8; t.data.len()];
    for oo in 0..o {
        for kk in 0..k {
            for ii in 0..i {
                let src = ((oo * i + ii) * k + kk) * es;
                let dst = ((oo * k + kk) * i + ii) * es;
                data[dst..dst + es].copy_from_slice(&t.data[src..src + es]);
            }
        }
    }
    Ok(RawTensor {
        dtype: t.dtype,
        shape: vec![o, k, i],
        data,
    })
}

/// Cuts axis 0 into `parts` equal pieces.
fn split_rows(t: &RawTensor, parts: usize) -> Result<Vec<RawTensor>, String> {
    let rows = *t.shape.first().ok_or("cannot split a 0-D tensor")?;
    if rows % parts != 0 {
        return Err(format!("{rows} rows do not split into {parts} equal parts"));
    }
    let mut shape = t.shape.clone();
    shape[0] = rows / parts;
    let chunk = t.data.len() / parts;
    Ok(t.data
        .chunks_exact(chunk)
        .map(|bytes| RawTensor {
            dtype: t.dtype,
            shape: shape.clone(),
            data: bytes.to_vec(),
        })
        .collect())
}

/// True when every element is zero (of either sign, for floats).
fn is_all_zero(t: &RawTensor) -> bool {
    let es = t.dtype.size();
    let sign_bit_only = t.dtype.is_float();
    t.data.chunks_exact(es).all(|elem| {
        let (last, rest) = elem.split_last().expect("elements are at least one byte");
        rest.iter().all(|&b| b == 0) && (*last == 0 || (sign_bit_only && *last == 0x80))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorDtype;

    fn f32_tensor(shape: &[usize], values: impl IntoIterator<Item = f32>) -> RawTensor {
        let data: Vec<u8> = values.into_iter().flat_map(f32::to_le_bytes).collect();
        RawTensor {
            dtype: TensorDtype::F32,
            shape: shape.to_vec(),
            data,
        }
    }

    fn values(t: &RawTensor) -> Vec<f32> {
        t.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn conv_weights_become_channels_last() {
        // [out=2, in=3, k=2] with value = 100*o + 10*i + k.
        let src = f32_tensor(
            &[2, 3, 2],
            (0..2).flat_map(|o| {
                (0..3).flat_map(move |i| (0..2).map(move |k| (100 * o + 10 * i + k) as f32))
            }),
        );
        let dst = conv_to_channels_last(&src).unwrap();
        assert_eq!(dst.shape, vec![2, 2, 3]);
        let expected: Vec<f32> = (0..2)
            .flat_map(|o| {
                (0..2).flat_map(move |k| (0..3).map(move |i| (100 * o + 10 * i + k) as f32))
            })
            .collect();
        assert_eq!(values(&dst), expected);
    }

    #[test]
    fn fused_rows_split_evenly_and_zero_checks_ignore_sign() {
        let t = f32_tensor(&[6, 1], [1.0, 2.0, -0.0, 0.0, 5.0, 6.0]);
        let parts = split_rows(&t, 3).unwrap();
        assert_eq!(values(&parts[0]), vec![1.0, 2.0]);
        assert!(is_all_zero(&parts[1]));
        assert!(!is_all_zero(&parts[2]));
        assert!(split_rows(&t, 4).is_err());
    }
}
