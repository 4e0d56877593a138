//! Micro-benchmarks of the MLX binding, printed as a table next to the same
//! measurements taken by Python MLX (the peer) in the same run, then this
//! project's CPU kernels against MLX's own ops.
//!
//! `cargo bench --bench mlx_binding [-- --no-peer | --peer-python PATH]`
//!
//! The peer runs `scripts/bench_peer_mlx.py` with the Python named by
//! `--peer-python` or `MLX_ASR_PEER_PYTHON` (default: the venv made by
//! `scripts/setup-peers.sh`); it gets OpenBLAS through LD_PRELOAD so both
//! sides use the same BLAS.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

mod binding;
mod kernels;
mod peer;
mod timing;

/// Whisper tiny's width and attention heads: the shapes both tables use.
const D: i32 = 384;
const HEADS: i32 = 6;

#[derive(Parser)]
#[command(about = "Benchmark the MLX binding against Python MLX in the same run")]
struct Args {
    /// Skip the Python MLX peer.
    #[arg(long)]
    no_peer: bool,
    /// Python interpreter with `mlx` installed (default: the venv that
    /// scripts/setup-peers.sh creates, or $MLX_ASR_PEER_PYTHON).
    #[arg(long)]
    peer_python: Option<PathBuf>,
    /// Added by `cargo bench` to every benchmark binary.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    print!("{}", mlx_asr::build_info::report());
    eprintln!("measuring the binding");
    let mut rows = binding::measure().context("benchmark failed")?;
    let peer_name = match (args.no_peer, args.peer_python.or_else(peer::python)) {
        (true, _) => "peer (off)",
        (false, None) => {
            eprintln!("note: no Python MLX peer; run scripts/setup-peers.sh or pass --peer-python");
            "peer (n/a)"
        }
        (false, Some(python)) => {
            eprintln!("measuring the Python MLX peer ({})", python.display());
            match peer::measure(&python) {
                Ok(peer) => {
                    for row in &mut rows {
                        row.peer = peer.get(row.key).copied();
                    }
                    "python-mlx"
                }
                Err(e) => {
                    eprintln!("warning: peer failed: {e}");
                    "peer (failed)"
                }
            }
        }
    };
    println!();
    print!("{}", binding::render(&rows, peer_name));
    eprintln!("measuring the CPU kernels against MLX's ops");
    let kernels = kernels::measure().context("kernel benchmark failed")?;
    println!();
    println!(
        "CPU kernels: {} thread(s); the mlx op column is MLX's own CPU op",
        mlx::kernels::custom_kernel_threads()
    );
    print!("{}", kernels::render(&kernels));
    Ok(())
}
