//! The `pipeline` command-line tool.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use mlx_asr::bench;

#[derive(Parser)]
#[command(name = "pipeline", version, about = "Speech recognition on MLX arrays")]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the MLX version, devices and which BLAS serves matrix products.
    Info,
    /// Benchmark the MLX binding against Python MLX in the same run.
    Bench {
        /// Skip the Python MLX peer.
        #[arg(long)]
        no_peer: bool,
        /// Python interpreter with `mlx` installed (default: the venv that
        /// scripts/setup-peers.sh creates, or $MLX_ASR_PEER_PYTHON).
        #[arg(long)]
        peer_python: Option<PathBuf>,
    },
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("MLX_ASR_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn print_info() -> Result<()> {
    println!("MLX {}", mlx::version());
    println!("default device: {:?}", mlx::default_device());
    println!("gpu available: {}", mlx::is_available(mlx::Device::Gpu));
    println!("cblas_sgemm served by: {}", mlx::blas_provider());
    match mlx::openblas_config() {
        Some(config) => println!("OpenBLAS: {config}"),
        None => println!("OpenBLAS: not linked (reference BLAS, slow fp32 GEMM)"),
    }
    Ok(())
}

fn run_bench(no_peer: bool, peer_python: Option<PathBuf>) -> Result<()> {
    print_info()?;
    tracing::info!("measuring the binding");
    let mut rows = bench::measure().context("benchmark failed")?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_peer_mlx.py");
    let python = peer_python.or_else(bench::peer_python);
    let peer_name = match (no_peer, python) {
        (true, _) => "peer (off)",
        (false, None) => {
            eprintln!("note: no Python MLX peer; run scripts/setup-peers.sh or pass --peer-python");
            "peer (n/a)"
        }
        (false, Some(python)) => {
            tracing::info!(python = %python.display(), "measuring the Python MLX peer");
            match bench::measure_peer(&python, &script) {
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
    print!("{}", bench::render(&rows, peer_name));
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match cli.command {
        Command::Info => print_info(),
        Command::Bench {
            no_peer,
            peer_python,
        } => run_bench(no_peer, peer_python),
    }
}
