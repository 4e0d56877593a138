//! Micro-benchmarks of the MLX binding, printed as a table next to the same
//! measurements taken by Python MLX (the peer) in the same run.
//!
//! The peer runs `scripts/bench_peer_mlx.py` with the Python named by
//! `MLX_ASR_PEER_PYTHON` (default: the venv made by `scripts/setup-peers.sh`);
//! it gets OpenBLAS through LD_PRELOAD so both sides use the same BLAS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mlx::fast::{layer_norm, scaled_dot_product_attention, AttentionMask};
use mlx::quant::QuantizedMatrix;
use mlx::{random, Array, Dtype};

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

/// Median seconds of `reps` calls of `f` after one warm-up call.
fn median_secs(reps: usize, mut f: impl FnMut() -> mlx::Result<()>) -> mlx::Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
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

const D: i32 = 384;
const HEADS: i32 = 6;
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

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLX_ASR_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("mlx-asr")
}

/// The Python that runs the peer, if one is set up.
pub fn peer_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLX_ASR_PEER_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = cache_dir().join("peers-venv/bin/python");
    venv.exists().then_some(venv)
}

/// Runs the Python MLX peer script and returns its measurements by key.
pub fn measure_peer(python: &Path, script: &Path) -> Result<BTreeMap<String, f64>, String> {
    let mut cmd = Command::new(python);
    cmd.arg(script);
    if mlx::openblas_config().is_some() {
        // The same OpenBLAS that serves our cblas_sgemm.
        cmd.env("LD_PRELOAD", mlx::blas_provider());
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed: {}",
            python.display(),
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("peer output is not a JSON object of numbers: {e}"))
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
pub fn measure_kernels() -> mlx::Result<Vec<KernelRow>> {
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
    // and int8 activations where the CPU has AVX-512 VNNI.
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
        ("... int8 activations (VNNI)", &int8),
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
pub fn render_kernels(rows: &[KernelRow]) -> String {
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
