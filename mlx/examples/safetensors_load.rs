//! Seconds and peak memory of loading a safetensors file and evaluating every
//! tensor: the reader (`load`: each tensor read into a fresh buffer) against
//! the mapping (`map`: tensors read in place from the page cache), then of
//! reading every tensor once (a sum), which brings mapped pages in.
//!
//! `cargo run --release -p mlx --example safetensors_load -- write FILE [MIB]`
//! writes random tensors shaped like a 4-bit quantized model's (packed `u32`
//! matrices, `f16` scales and biases, `f32` norms), about MIB MiB (default
//! 1000). `... -- load FILE` and `... -- map FILE` each measure one way; run
//! them as separate processes, since the peak (VmHWM) is per process.

use std::collections::BTreeMap;
use std::time::Instant;

use mlx::io::{load_safetensors, map_safetensors, save_safetensors};
use mlx::{random, Array, Dtype, Result};

/// One layer's matrices: `[rows, 1024]` weights in 4 bits, groups of 64.
fn layer(index: usize) -> Result<Vec<(String, Array)>> {
    let seed = index as u64 * 16;
    let mut out = Vec::new();
    for (j, (name, rows)) in [
        ("up", 3072),
        ("gate", 3072),
        ("down_t", 3072),
        ("qkvo", 4096),
    ]
    .into_iter()
    .enumerate()
    {
        let p = format!("layers.{index}.{name}");
        let s = seed + 3 * j as u64;
        let packed = random::uniform(&[rows, 1024 / 8], Dtype::F32, 0.0, 4.0e9, s)?;
        out.push((format!("{p}.weight"), packed.astype(Dtype::U32)?));
        let group = |seed| random::normal(&[rows, 1024 / 64], Dtype::F16, seed);
        out.push((format!("{p}.scales"), group(s + 1)?));
        out.push((format!("{p}.biases"), group(s + 2)?));
    }
    out.push((
        format!("layers.{index}.norm.weight"),
        random::normal(&[1024], Dtype::F32, seed + 15)?,
    ));
    Ok(out)
}

fn write(path: &str, mib: usize) -> Result<()> {
    let mut tensors = BTreeMap::new();
    let mut bytes = 0;
    let mut index = 0;
    while bytes < mib << 20 {
        for (name, a) in layer(index)? {
            bytes += a.nbytes();
            tensors.insert(name, a);
        }
        index += 1;
    }
    save_safetensors(path, &tensors, &BTreeMap::new())?;
    println!(
        "{path}: {} tensors, {:.0} MiB",
        tensors.len(),
        bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// A line of /proc/self/status, in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn memory() -> String {
    format!(
        "VmHWM {:.0} MiB, VmRSS {:.0} MiB (RssAnon {:.0}, RssFile {:.0})",
        status_mib("VmHWM"),
        status_mib("VmRSS"),
        status_mib("RssAnon"),
        status_mib("RssFile")
    )
}

fn measure(how: &str, path: &str) -> Result<()> {
    println!("before:            {}", memory());
    let start = Instant::now();
    let file = match how {
        "map" => map_safetensors(path)?,
        _ => load_safetensors(path)?,
    };
    let arrays: Vec<&Array> = file.tensors.values().collect();
    mlx::eval(&arrays)?;
    let loaded = start.elapsed().as_secs_f64();
    println!("{how} + eval: {loaded:7.3} s  {}", memory());

    let start = Instant::now();
    let sums = arrays
        .iter()
        .map(|a| a.sum(&[], false))
        .collect::<Result<Vec<_>>>()?;
    mlx::eval(&sums.iter().collect::<Vec<_>>())?;
    let read = start.elapsed().as_secs_f64();
    println!("read all:   {read:7.3} s  {}", memory());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write", path] => write(path, 1000),
        ["write", path, mib] => write(path, mib.parse().expect("MIB is a number")),
        [how @ ("load" | "map"), path] => measure(how, path),
        _ => {
            eprintln!("usage: safetensors_load (write FILE [MIB] | load FILE | map FILE)");
            std::process::exit(2);
        }
    }
}
