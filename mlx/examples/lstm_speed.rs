//! Milliseconds of the diarizer's LSTM stacks with the kernels' recurrence
//! (`kernels::lstm`) and with MLX's ops step by step (the kernels off), on
//! random weights: Resemblyzer's 3 × LSTM(256) over 160 frames of 40 mel
//! bands, pyannote segmentation's 4 × bidirectional LSTM(128) over 293
//! frames, Silero VAD's LSTM cell (128) on one stream, frame by frame and in
//! blocks.
//!
//! `cargo run --release -p mlx --example lstm_speed [-- BATCH...]`: the
//! batch sizes of the first two (default 32 and 256).

use std::time::Instant;

use mlx::kernels::{self, LinearEpilogue};
use mlx::{random, Array, Dtype, Result};

/// One layer and direction: `W_ih` `[4H, in]`, `W_hh` `[4H, H]`, bias `[4H]`.
struct Layer {
    w_ih: Array,
    w_hh: Array,
    bias: Array,
}

impl Layer {
    fn new(input: i32, hidden: i32, seed: u64) -> Result<Layer> {
        let scale = 1.0 / (hidden as f32).sqrt();
        let u = |shape: &[i32], seed| random::uniform(shape, Dtype::F32, -scale, scale, seed);
        Ok(Layer {
            w_ih: u(&[4 * hidden, input], seed)?,
            w_hh: u(&[4 * hidden, hidden], seed + 1)?,
            bias: u(&[4 * hidden], seed + 2)?,
        })
    }

    /// As `asr_models::nn::Lstm::forward`: one input product, then the
    /// recurrence.
    fn forward(&self, x: &Array, h0: &Array, c0: &Array, reverse: bool) -> Result<[Array; 3]> {
        let projected = kernels::linear(
            x,
            &self.w_ih,
            LinearEpilogue {
                bias: Some(&self.bias),
                ..LinearEpilogue::default()
            },
        )?;
        let (y, h, c) = kernels::lstm(&projected, &self.w_hh, h0, c0, reverse)?;
        Ok([y, h, c])
    }
}

fn zeros(batch: i32, hidden: i32) -> Result<Array> {
    Array::zeros(&[batch, hidden], Dtype::F32)
}

/// Resemblyzer: three stacked layers, the last one's output kept.
fn resemblyzer(layers: &[Layer], x: &Array) -> Result<Array> {
    let batch = x.dim(0)?;
    let mut y = x.clone();
    for l in layers {
        let z = zeros(batch, 256)?;
        [y, _, _] = l.forward(&y, &z, &z, false)?;
    }
    y.eval()?;
    Ok(y)
}

/// pyannote: four bidirectional layers, directions concatenated.
fn pyannote(layers: &[(Layer, Layer)], x: &Array) -> Result<Array> {
    let batch = x.dim(0)?;
    let mut y = x.clone();
    for (fwd, bwd) in layers {
        let z = zeros(batch, 128)?;
        let [a, _, _] = fwd.forward(&y, &z, &z, false)?;
        let [b, _, _] = bwd.forward(&y, &z, &z, true)?;
        y = mlx::concatenate(&[&a, &b], 2)?;
    }
    y.eval()?;
    Ok(y)
}

/// Silero: `frames` frames of one stream in blocks of `block`, the state
/// carried from call to call, each block evaluated before the next.
fn silero(cell: &Layer, x: &Array, block: i32) -> Result<()> {
    let frames = x.dim(1)?;
    let (mut h, mut c) = (zeros(1, 128)?, zeros(1, 128)?);
    for from in (0..frames).step_by(block as usize) {
        let part = x.slice_axis(1, from, (from + block).min(frames))?;
        let [y, hn, cn] = cell.forward(&part, &h, &c, false)?;
        mlx::eval(&[&y, &hn, &cn])?;
        (h, c) = (hn, cn);
    }
    Ok(())
}

/// Best of `runs` timings of f, in ms.
fn best_ms(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// The kernels' and MLX's ops' times of f.
fn both(what: &str, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<()> {
    kernels::set_custom_kernels(true);
    let kernel = best_ms(runs, &mut f)?;
    kernels::set_custom_kernels(false);
    let ops = best_ms(runs.min(2), &mut f)?;
    kernels::set_custom_kernels(true);
    println!(
        "{what:<44} {kernel:>10.1} ms {ops:>10.1} ms {:>7.1}x",
        ops / kernel
    );
    Ok(())
}

fn main() -> Result<()> {
    let batches: Vec<i32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a batch size"))
        .collect();
    let batches = if batches.is_empty() {
        vec![32, 256]
    } else {
        batches
    };
    println!(
        "threads {}, isa {}",
        kernels::custom_kernel_threads(),
        kernels::active_isa()
    );
    println!(
        "{:<44} {:>13} {:>13} {:>8}",
        "", "kernels", "MLX ops", "speed-up"
    );
    let resemblyzer_layers = [
        Layer::new(40, 256, 1)?,
        Layer::new(256, 256, 4)?,
        Layer::new(256, 256, 7)?,
    ];
    let mut pyannote_layers = Vec::new();
    for l in 0..4u64 {
        let input = if l == 0 { 60 } else { 256 };
        pyannote_layers.push((
            Layer::new(input, 128, 10 + 6 * l)?,
            Layer::new(input, 128, 13 + 6 * l)?,
        ));
    }
    for &b in &batches {
        let x = random::normal(&[b, 160, 40], Dtype::F32, 1)?;
        both(&format!("resemblyzer 3xLSTM(256) T=160 B={b}"), 3, || {
            resemblyzer(&resemblyzer_layers, &x).map(drop)
        })?;
        let x = random::normal(&[b, 293, 60], Dtype::F32, 2)?;
        both(&format!("pyannote 4xBiLSTM(128) T=293 B={b}"), 3, || {
            pyannote(&pyannote_layers, &x).map(drop)
        })?;
    }
    let cell = Layer::new(128, 128, 40)?;
    let x = random::normal(&[1, 1000, 128], Dtype::F32, 3)?;
    for block in [1, 10, 100] {
        both(
            &format!("silero LSTMCell(128) 1000 frames, blocks of {block}"),
            3,
            || silero(&cell, &x, block),
        )?;
    }
    Ok(())
}
