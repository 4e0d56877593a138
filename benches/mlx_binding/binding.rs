//! The binding's own measurements: dispatch cost, GEMM, a small
//! transformer decoder step and matrix-vector products, each with the
//! Python MLX peer's number for the same work.

use mlx::fast::{layer_norm, scaled_dot_product_attention, AttentionMask};
use mlx::quant::QuantizedMatrix;
use mlx::{random, Array, Dtype};

use crate::timing::median_secs;
use crate::{D, HEADS};

/// One measured quantity.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// Key shared with the peer script's JSON output.
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub ours: f64,
    pub peer: Option<f64>,
    /// GFLOP/s-like units are better when higher, times when lower.
    pub higher_is_better: bool,
}

impl BenchRow {
    /// How many times better we are than the peer (> 1: we win).
    pub fn advantage(&self) -> Option<f64> {
        self.peer.map(|p| {
            if self.higher_is_better {
                self.ours / p
            } else {
                p / self.ours
            }
        })
    }
}

fn gemm_gflops(n: i32) -> mlx::Result<f64> {
    let a = random::normal(&[n, n], Dtype::F32, 1)?;
    let b = random::normal(&[n, n], Dtype::F32, 2)?;
    mlx::eval(&[&a, &b])?;
    let secs = median_secs(5, || a.matmul(&b)?.eval())?;
    Ok(2.0 * f64::from(n).powi(3) / secs / 1e9)
}

/// Microseconds for one tiny op plus its own eval: the cost of a host round trip.
fn dispatch_eager_us() -> mlx::Result<f64> {
    let a = Array::scalar(1.0f32)?;
    let b = Array::scalar(2.0f32)?;
    const N: usize = 2000;
    let secs = median_secs(5, || {
        for _ in 0..N {
            a.add(&b)?.eval()?;
        }
        Ok(())
    })?;
    Ok(secs / N as f64 * 1e6)
}

/// Microseconds per op when a chain of tiny ops is built lazily and evaluated once.
fn dispatch_lazy_us() -> mlx::Result<f64> {
    let one = Array::scalar(1.0f32)?;
    const N: usize = 2000;
    let secs = median_secs(5, || {
        let mut x = one.clone();
        for _ in 0..N {
            x = x.add(&one)?;
        }
        x.eval()
    })?;
    Ok(secs / N as f64 * 1e6)
}

/// Weights of one pre-LN transformer block, laid out `[in, out]`.
struct Block {
    ln1: (Array, Array),
    wq: Array,
    wk: Array,
    wv: Array,
    wo: Array,
    ln2: (Array, Array),
    w1: Array,
    w2: Array,
    k_cache: Array,
    v_cache: Array,
}

const CONTEXT: i32 = 128;
const LAYERS: u64 = 4;

impl Block {
    fn random(seed: u64) -> mlx::Result<Block> {
        let w = |shape: &[i32], s: u64| {
            random::normal(shape, Dtype::F32, seed * 100 + s)?.mul_scalar(0.02)
        };
        let ln = || {
            Ok::<_, mlx::Error>((
                Array::ones(&[D], Dtype::F32)?,
                Array::zeros(&[D], Dtype::F32)?,
            ))
        };
        let cache =
            |s: u64| random::normal(&[1, HEADS, CONTEXT, D / HEADS], Dtype::F32, seed * 100 + s);
        Ok(Block {
            ln1: ln()?,
            wq: w(&[D, D], 1)?,
            wk: w(&[D, D], 2)?,
            wv: w(&[D, D], 3)?,
            wo: w(&[D, D], 4)?,
            ln2: ln()?,
            w1: w(&[D, 4 * D], 5)?,
            w2: w(&[4 * D, D], 6)?,
            k_cache: cache(7)?,
            v_cache: cache(8)?,
        })
    }

    fn arrays(&self) -> Vec<&Array> {
        vec![
            &self.ln1.0,
            &self.ln1.1,
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.ln2.0,
            &self.ln2.1,
            &self.w1,
            &self.w2,
            &self.k_cache,
            &self.v_cache,
        ]
    }

    /// One decoding step for a single token `x` of shape `[1, 1, D]`.
    fn step(&self, x: &Array) -> mlx::Result<Array> {
        let heads = |t: &Array| {
            t.reshape(&[1, 1, HEADS, D / HEADS])?
                .transpose(&[0, 2, 1, 3])
        };
        let h = layer_norm(x, Some(&self.ln1.0), Some(&self.ln1.1), 1e-5)?;
        let q = heads(&h.matmul(&self.wq)?)?;
        let k = mlx::concatenate(&[&self.k_cache, &heads(&h.matmul(&self.wk)?)?], 2)?;
        let v = mlx::concatenate(&[&self.v_cache, &heads(&h.matmul(&self.wv)?)?], 2)?;
        let scale = 1.0 / ((D / HEADS) as f32).sqrt();
        let attn = scaled_dot_product_attention(&q, &k, &v, scale, AttentionMask::None)?
            .transpose(&[0, 2, 1, 3])?
            .reshape(&[1, 1, D])?;
        let x = x.add(&attn.matmul(&self.wo)?)?;
        let h = layer_norm(&x, Some(&self.ln2.0), Some(&self.ln2.1), 1e-5)?;
        x.add(&h.matmul(&self.w1)?.gelu()?.matmul(&self.w2)?)
    }
}

/// Milliseconds for one token through 4 layers of d=384 with a 128-token cache.
fn transformer_step_ms() -> mlx::Result<f64> {
    let blocks = (0..LAYERS)
        .map(Block::random)
        .collect::<mlx::Result<Vec<_>>>()?;
    let all: Vec<&Array> = blocks.iter().flat_map(Block::arrays).collect();
    mlx::eval(&all)?;
    let x0 = random::normal(&[1, 1, D], Dtype::F32, 9)?;
    let secs = median_secs(20, || {
        let mut x = x0.clone();
        for block in &blocks {
            x = block.step(&x)?;
        }
        x.eval()
    })?;
    Ok(secs * 1e3)
}

/// Microseconds for `[1, 384] x [384, 1536]`, fp32 or quantized (`bits`).
fn matvec_us(bits: Option<i32>) -> mlx::Result<f64> {
    let x = random::normal(&[1, D], Dtype::F32, 10)?;
    let w = random::normal(&[4 * D, D], Dtype::F32, 11)?; // linear layout [out, in]
    mlx::eval(&[&x, &w])?;
    const N: usize = 200;
    let secs = match bits {
        None => {
            let wt = w.transpose(&[])?;
            median_secs(5, || {
                for _ in 0..N {
                    x.matmul(&wt)?.eval()?;
                }
                Ok(())
            })?
        }
        Some(bits) => {
            let q = QuantizedMatrix::quantize(&w, 64, bits)?;
            mlx::eval(&[&q.weight, &q.scales, &q.biases])?;
            median_secs(5, || {
                for _ in 0..N {
                    q.matmul(&x, true)?.eval()?;
                }
                Ok(())
            })?
        }
    };
    Ok(secs / N as f64 * 1e6)
}

/// Runs every benchmark of the binding (our side only).
pub fn measure() -> mlx::Result<Vec<BenchRow>> {
    let row = |key, label, unit, ours, higher_is_better| BenchRow {
        key,
        label,
        unit,
        ours,
        peer: None,
        higher_is_better,
    };
    Ok(vec![
        row(
            "dispatch_eager_us",
            "tiny add + eval (host round trip)",
            "us",
            dispatch_eager_us()?,
            false,
        ),
        row(
            "dispatch_lazy_us",
            "tiny add, lazy chain of 2000",
            "us/op",
            dispatch_lazy_us()?,
            false,
        ),
        row(
            "gemm_1024_gflops",
            "fp32 GEMM 1024x1024",
            "GFLOP/s",
            gemm_gflops(1024)?,
            true,
        ),
        row(
            "gemm_2048_gflops",
            "fp32 GEMM 2048x2048",
            "GFLOP/s",
            gemm_gflops(2048)?,
            true,
        ),
        row(
            "transformer_step_ms",
            "4-layer d=384 decoder step, ctx 128",
            "ms",
            transformer_step_ms()?,
            false,
        ),
        row(
            "matvec_f32_us",
            "matvec 1x384 . 384x1536 fp32",
            "us",
            matvec_us(None)?,
            false,
        ),
        row(
            "matvec_q8_us",
            "matvec 1x384 . 384x1536 q8 g64",
            "us",
            matvec_us(Some(8))?,
            false,
        ),
        row(
            "matvec_q4_us",
            "matvec 1x384 . 384x1536 q4 g64",
            "us",
            matvec_us(Some(4))?,
            false,
        ),
    ])
}

/// Renders rows as a fixed-width table.
pub fn render(rows: &[BenchRow], peer_name: &str) -> String {
    let mut out = format!(
        "{:<38} {:>10} {:>12} {:>12} {:>9}\n",
        "benchmark", "unit", "mlx-asr", peer_name, "advantage"
    );
    for r in rows {
        let peer = r.peer.map_or("n/a".to_string(), |p| format!("{p:.2}"));
        let adv = r
            .advantage()
            .map_or("n/a".to_string(), |a| format!("{a:.2}x"));
        out += &format!(
            "{:<38} {:>10} {:>12.2} {:>12} {:>9}\n",
            r.label, r.unit, r.ours, peer, adv
        );
    }
    out
}
