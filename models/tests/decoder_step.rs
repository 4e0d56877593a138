//! A decoder block's fused decoding step (quantized, f32 and f16
//! projections) against the same block's ops: the layer's output and both caches over several steps, for one row,
//! several rows with their own audio, several rows sharing one window's
//! keys and values, and caches growing on the way.

use std::collections::BTreeMap;

use asr_models::weights::Weights;
use asr_models::whisper::{CrossKv, KvCache, ResidualAttentionBlock};
use asr_models::Quantization;
use mlx::quant::QuantizedMatrix;
use mlx::{Array, Dtype};

const STATE: i32 = 128;
const HEADS: i32 = 2;
const FRAMES: i32 = 40;

/// Deterministic pseudo-random values, uniform in [-scale, scale] (a
/// smooth pattern would line up the attention scores until one key takes
/// all the weight and the others' values stop mattering).
fn values(n: i32, seed: u32, scale: f32) -> Vec<f32> {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) + 1;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn array(shape: &[i32], seed: u32, scale: f32) -> Array {
    let n = shape.iter().product();
    Array::from_slice(&values(n, seed, scale), shape).unwrap()
}

/// How a block's projections are stored.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Storage {
    /// 8-bit, groups of 64 (cross-attention keys and values in f16).
    Q8,
    F32,
    /// f32 values that are f16 values, kept in f16 as the decoder does.
    F16,
}

/// A decoder block ("b") with random weights stored as `storage` says.
fn block(storage: Storage) -> ResidualAttentionBlock {
    let mut arrays = BTreeMap::new();
    let mut seed = 1;
    let mut put = |name: String, a: Array| {
        arrays.insert(name, a);
    };
    let mut next = || {
        seed += 1;
        seed
    };
    let projections = [
        ("attn.query", STATE, true),
        ("attn.key", STATE, false),
        ("attn.value", STATE, true),
        ("attn.out", STATE, true),
        ("cross_attn.query", STATE, true),
        ("cross_attn.key", STATE, false),
        ("cross_attn.value", STATE, true),
        ("cross_attn.out", STATE, true),
        ("mlp1", 4 * STATE, true),
        ("mlp2", STATE, true),
    ];
    for (name, out, bias) in projections {
        let input = if name == "mlp2" { 4 * STATE } else { STATE };
        let w = array(&[out, input], next(), 0.2);
        match storage {
            Storage::Q8 => {
                let q = QuantizedMatrix::quantize(&w, 64, 8).unwrap();
                put(format!("b.{name}.weight"), q.weight);
                put(format!("b.{name}.scales"), q.scales);
                put(format!("b.{name}.biases"), q.biases);
            }
            Storage::F32 => put(format!("b.{name}.weight"), w),
            Storage::F16 => {
                let halves = w.astype(Dtype::F16).unwrap().astype(Dtype::F32).unwrap();
                put(format!("b.{name}.weight"), halves);
            }
        }
        if bias {
            put(format!("b.{name}.bias"), array(&[out], next(), 0.1));
        }
    }
    for norm in ["attn_ln", "cross_attn_ln", "mlp_ln"] {
        let ones: Vec<f32> = values(STATE, next(), 0.2).iter().map(|v| 1.0 + v).collect();
        put(
            format!("b.{norm}.weight"),
            Array::from_slice(&ones, &[STATE]).unwrap(),
        );
        put(format!("b.{norm}.bias"), array(&[STATE], next(), 0.1));
    }
    let quant = (storage == Storage::Q8).then_some(Quantization {
        group_size: 64,
        bits: 8,
    });
    let w = Weights::new(arrays, quant);
    let mut block = ResidualAttentionBlock::load(&w, "b", STATE, HEADS, true).unwrap();
    block.store_step_weights_f16().unwrap();
    block
}

fn read(a: &Array) -> Vec<f32> {
    a.to_vec::<f32>().unwrap()
}

/// Runs a prompt of `prompt` positions through two caches, then `steps`
/// single positions through one by the fused kernel and through the other
/// by the block's ops; then one more by the ops over both.
/// `frames` below FRAMES attends to the first frames only, through views
/// of the window's keys and values (strided rows and heads).
fn compare(storage: Storage, rows: i32, audio_rows: i32, prompt: i32, steps: i32, frames: i32) {
    let block = &block(storage);
    let label = format!(
        "{storage:?}, {rows} rows, {audio_rows} audio rows, prompt {prompt}, {frames} frames"
    );
    let audio = array(&[audio_rows, FRAMES, STATE], 50 + rows as u32, 1.0);
    let (cross_attn, _) = block.cross_attn.as_ref().unwrap();
    // As the decoder keeps them: f16 for a quantized model, else f32.
    let kv_dtype = match storage {
        Storage::Q8 => Dtype::F16,
        Storage::F32 | Storage::F16 => Dtype::F32,
    };
    let window: CrossKv = cross_attn.project_kv(&audio, kv_dtype).unwrap();
    let cross = CrossKv {
        keys: window.keys.slice_axis(2, 0, frames).unwrap(),
        values: window.values.slice_axis(2, 0, frames).unwrap(),
    };
    let tokens = array(&[rows, prompt, STATE], 60, 1.0);
    let (mut fused, mut by_ops) = (KvCache::default(), KvCache::default());
    for cache in [&mut fused, &mut by_ops] {
        let out = block.forward(&tokens, Some(cache), Some(&cross)).unwrap();
        out.eval().unwrap();
    }
    let weights = block.step_weights().expect("a quantized decoder block");
    for s in 0..steps {
        let x = array(&[rows, 1, STATE], 70 + s as u32, 1.5);
        let want = block.forward(&x, Some(&mut by_ops), Some(&cross)).unwrap();
        let got = fused
            .step(|keys, values, position| {
                assert_eq!(position, prompt + s);
                let out = weights.step(&x, keys, values, position, &cross.keys, &cross.values)?;
                Ok((out.x, out.keys, out.values))
            })
            .unwrap();
        assert_eq!(got.shape(), want.shape(), "{label}");
        let (got, want) = (read(&got), read(&want));
        // The same kernels in the same order: equal values.
        assert_eq!(got, want, "{label}, step {s}");
        assert!(want.iter().all(|v| v.is_finite()));
    }
    // The caches hold the same keys and values at every position.
    let next = array(&[rows, 1, STATE], 90, 1.5);
    let after_fused = block
        .forward(&next, Some(&mut fused), Some(&cross))
        .unwrap();
    let after_ops = block
        .forward(&next, Some(&mut by_ops), Some(&cross))
        .unwrap();
    assert_eq!(read(&after_fused), read(&after_ops), "{label}, then by ops");
}

#[test]
fn fused_decoding_step_equals_the_blocks_ops() {
    if !mlx::decoder_step::decoder_layer_steps_available() {
        eprintln!("custom kernels off or not the CPU backend: nothing to compare");
        return;
    }
    for storage in [Storage::Q8, Storage::F32, Storage::F16] {
        compare(storage, 1, 1, 3, 4, FRAMES);
        // Rows with their own windows (batched files), and rows sharing one
        // window (hypotheses of one window).
        compare(storage, 5, 5, 4, 3, FRAMES);
        compare(storage, 3, 1, 2, 3, FRAMES);
        // Steps past the cache's first capacity (64): it grows on the way.
        compare(storage, 2, 2, 62, 4, FRAMES);
        // Keys and values that are views into a longer window.
        compare(storage, 2, 2, 3, 2, FRAMES - 7);
    }
}

#[test]
fn fused_step_refuses_what_it_cannot_take() {
    if !mlx::decoder_step::decoder_layer_steps_available() {
        return;
    }
    let block = block(Storage::Q8);
    let step = block.step_weights().unwrap();
    let cross = array(&[1, HEADS, FRAMES, STATE / HEADS], 90, 1.0);
    let caches = || Array::zeros(&[1, HEADS, 64, STATE / HEADS], Dtype::F32).unwrap();
    // Position past the cache, and a width the weights do not have.
    let x = array(&[1, 1, STATE], 91, 1.0);
    let err = step
        .step(&x, caches(), caches(), 64, &cross, &cross)
        .unwrap_err();
    assert!(err.to_string().contains("cannot take"), "{err}");
    let narrow = array(&[1, 1, STATE / 2], 92, 1.0);
    assert!(step
        .step(&narrow, caches(), caches(), 0, &cross, &cross)
        .is_err());
}
