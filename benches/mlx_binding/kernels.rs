//! This project's CPU kernels against MLX's own CPU ops on Whisper tiny's
//! non-GEMM hot spots, measured in the same process.

use mlx::fast::{layer_norm, scaled_dot_product_attention, AttentionMask};
use mlx::quant::QuantizedMatrix;
use mlx::{random, Array, Dtype};

use crate::timing::median_secs;
use crate::{D, HEADS};

/// One CPU kernel timed as MLX's own op and as this project's primitive, in
/// the same process, alternating.
#[derive(Debug, Clone)]
pub struct KernelRow {
    pub label: &'static str,
    /// Milliseconds, medians.
    pub mlx_ms: f64,
    pub ours_ms: f64,
}

/// Median milliseconds of `f` with MLX's ops and with this crate's kernels,
/// the two measured in alternating rounds so load changes hit both alike.
fn both_ms(rounds: usize, reps: usize, f: &dyn Fn() -> mlx::Result<()>) -> mlx::Result<(f64, f64)> {
    let previous = mlx::kernels::custom_kernels();
    let mut times = [Vec::new(), Vec::new()];
    let result = (|| -> mlx::Result<()> {
        for _ in 0..rounds {
            for (i, on) in [false, true].into_iter().enumerate() {
                mlx::kernels::set_custom_kernels(on);
                times[i].push(median_secs(reps, f)?);
            }
        }
        Ok(())
    })();
    mlx::kernels::set_custom_kernels(previous);
    result?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e3
    };
    Ok((median(&mut times[0]), median(&mut times[1])))
}

/// Whisper tiny's non-GEMM hot spots (d=384, 6 heads, 1500 encoder frames),
/// MLX's CPU op against ours.
pub fn measure() -> mlx::Result<Vec<KernelRow>> {
    let normal = |shape: &[i32], seed| random::normal(shape, Dtype::F32, seed);
    let mut rows = Vec::new();
    let mut add = |label, (mlx_ms, ours_ms)| {
        rows.push(KernelRow {
            label,
            mlx_ms,
            ours_ms,
        })
    };

    let s = normal(&[6, 1500, 1500], 20)?;
    mlx::eval(&[&s])?;
    add(
        "softmax 6x1500x1500 (last axis)",
        both_ms(3, 3, &|| s.softmax(&[-1], true)?.eval())?,
    );
    let s = normal(&[1, 51864], 21)?;
    mlx::eval(&[&s])?;
    add(
        "softmax 1x51864 (vocabulary)",
        both_ms(3, 20, &|| s.softmax(&[-1], true)?.eval())?,
    );

    let x = normal(&[1500, 1536], 22)?;
    mlx::eval(&[&x])?;
    add(
        "GELU 1500x1536 (encoder MLP)",
        both_ms(3, 3, &|| x.gelu()?.eval())?,
    );
    let x = normal(&[5, 1, 1536], 23)?;
    mlx::eval(&[&x])?;
    add(
        "GELU 5x1x1536 (decoder MLP, 5 beams)",
        both_ms(3, 50, &|| x.gelu()?.eval())?,
    );

    let w = normal(&[384], 24)?;
    let b = normal(&[384], 25)?;
    let x = normal(&[1, 1500, 384], 26)?;
    mlx::eval(&[&w, &b, &x])?;
    add(
        "layer_norm 1500x384",
        both_ms(3, 5, &|| layer_norm(&x, Some(&w), Some(&b), 1e-5)?.eval())?,
    );
    let x = normal(&[1, 1, 384], 27)?;
    mlx::eval(&[&x])?;
    add(
        "layer_norm 1x384",
        both_ms(3, 50, &|| layer_norm(&x, Some(&w), Some(&b), 1e-5)?.eval())?,
    );

    // Encoder self-attention: heads split from [1, 1500, 384] (a transposed view).
    let split = |t: &Array, n: i32| {
        t.reshape(&[1, n, HEADS, D / HEADS])?
            .transpose(&[0, 2, 1, 3])
    };
    let scale = 1.0 / ((D / HEADS) as f32).sqrt();
    let (q, k, v) = (
        normal(&[1, 1500, D], 28)?,
        normal(&[1, 1500, D], 29)?,
        normal(&[1, 1500, D], 30)?,
    );
    mlx::eval(&[&q, &k, &v])?;
    let (qh, kh, vh) = (split(&q, 1500)?, split(&k, 1500)?, split(&v, 1500)?);
    add(
        "attention 6x1500x64, no mask (encoder)",
        both_ms(3, 3, &|| {
            scaled_dot_product_attention(&qh, &kh, &vh, scale, AttentionMask::None)?.eval()
        })?,
    );
    // Decoder cross-attention: one query (or 5 beams folded) against 1500 keys.
    let kc = kh.reshape(&[1, HEADS, 1500, D / HEADS])?.add_scalar(0.0)?;
    let vc = vh.reshape(&[1, HEADS, 1500, D / HEADS])?.add_scalar(0.0)?;
    mlx::eval(&[&kc, &vc])?;
    for (label, l) in [
        ("attention 1 query x 1500 keys (cross)", 1),
        ("attention 5 queries x 1500 keys (cross)", 5),
    ] {
        let q1 = normal(&[1, HEADS, l, D / HEADS], 31)?;
        mlx::eval(&[&q1])?;
        add(
            label,
            both_ms(3, 30, &|| {
                scaled_dot_product_attention(&q1, &kc, &vc, scale, AttentionMask::None)?.eval()
            })?,
        );
    }
    // A window's cross-attention keys, split into heads and stored f16
    // row-major (MLX: astype, then a copy of the transposed view).
    let keys = normal(&[1, 1500, D], 40)?;
    mlx::eval(&[&keys])?;
    let heads = split(&keys, 1500)?;
    add(
        "keys 1500x384 -> 6 heads, f16 row-major",
        both_ms(3, 10, &|| {
            mlx::kernels::row_major(&heads, Dtype::F16)?.eval()
        })?,
    );
    // Decoder self-attention: the prompt (causal) and one step over 224 cached keys.
    let p = normal(&[1, HEADS, 64, D / HEADS], 32)?;
    let kv = normal(&[1, HEADS, 224, D / HEADS], 33)?;
    let q1 = normal(&[1, HEADS, 1, D / HEADS], 34)?;
    mlx::eval(&[&p, &kv, &q1])?;
    add(
        "attention 64 queries, causal (prompt)",
        both_ms(3, 30, &|| {
            scaled_dot_product_attention(&p, &p, &p, scale, AttentionMask::Causal)?.eval()
        })?,
    );
    add(
        "attention 1 query x 224 keys (self)",
        both_ms(3, 30, &|| {
            scaled_dot_product_attention(&q1, &kv, &kv, scale, AttentionMask::None)?.eval()
        })?,
    );
    // The decoder's vocabulary projection: one row (or 5 beams) against the
    // 51864x384 token embedding, transposed, stored f32 or f16.
    let table = normal(&[51864, D], 35)?;
    let half = table.astype(Dtype::F16)?;
    mlx::eval(&[&table, &half])?;
    for (label, batch, w) in [
        ("logits 1x384 . 51864x384 f32", 1, &table),
        ("logits 1x384 . 51864x384 f16 weights", 1, &half),
        ("logits 5x384 . 51864x384 f16 weights", 5, &half),
    ] {
        let x = normal(&[batch, 1, D], 36)?;
        mlx::eval(&[&x])?;
        add(
            label,
            both_ms(3, 10, &|| x.matmul(&w.transpose(&[])?)?.eval())?,
        );
    }
    // The same projection from an affine-quantized table (`--quantize`).
    for (label, batch, bits) in [
        ("logits 1x384 . 51864x384 q8 g64", 1, 8),
        ("logits 5x384 . 51864x384 q8 g64", 5, 8),
        ("logits 1x384 . 51864x384 q4 g64", 1, 4),
    ] {
        let q = QuantizedMatrix::quantize(&table, 64, bits)?;
        let x = normal(&[batch, 1, D], 37)?;
        mlx::eval(&[&x, &q.weight, &q.scales, &q.biases])?;
        add(label, both_ms(3, 10, &|| q.matmul(&x, true)?.eval())?);
    }
    // An encoder window's MLP input projection (q8): the dequantized GEMM,
    // and int8 activations where the CPU has AVX2 or better.
    let w = normal(&[4 * D, D], 38)?;
    let x = normal(&[1, 1500, D], 39)?;
    let q = QuantizedMatrix::quantize(&w, 64, 8)?;
    mlx::eval(&[&x, &q.weight, &q.scales, &q.biases])?;
    let int8 = QuantizedMatrix {
        int8_activations: true,
        ..q.clone()
    };
    for (label, m) in [
        ("linear 1500x384 . 1536x384 q8 g64", &q),
        ("... int8 activations", &int8),
    ] {
        if m.int8_activations && !mlx::kernels::int8_products_available() {
            continue;
        }
        add(
            label,
            both_ms(3, 3, &|| m.linear(&x, Default::default())?.eval())?,
        );
    }
    Ok(rows)
}

/// Renders the kernel rows as a table (MLX's op, ours, speed-up).
pub fn render(rows: &[KernelRow]) -> String {
    let mut out = format!(
        "{:<42} {:>10} {:>10} {:>9}\n",
        "CPU kernel (ms, median)", "mlx op", "mlx-asr", "speed-up"
    );
    for r in rows {
        out += &format!(
            "{:<42} {:>10.3} {:>10.3} {:>8.2}x\n",
            r.label,
            r.mlx_ms,
            r.ours_ms,
            r.mlx_ms / r.ours_ms
        );
    }
    out
}
