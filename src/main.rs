//! The `pipeline` command-line tool.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::builder::TypedValueParser;
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
    /// Convert a Whisper checkpoint into an MLX model folder.
    #[command(long_about = CONVERT_HELP)]
    Convert(ConvertArgs),
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

const CONVERT_HELP: &str = "Convert a Whisper checkpoint into an MLX model folder.

Input formats (--from):
  CTranslate2 model folder   model.bin + config.json, as faster-whisper uses
                             (float32/float16/bfloat16/int8/int16 weights)
  Hugging Face model folder  config.json + model.safetensors or
                             pytorch_model.bin, either possibly sharded
                             (*.index.json); alignment heads from
                             generation_config.json
  openai-whisper checkpoint  a .pt file holding {dims, model_state_dict}

PyTorch files are read by a pickle reader that runs no code: only tensor,
storage and container globals are accepted, anything else is refused by name.
Legacy (pre-1.6, non-zip) torch files are refused: re-save them with torch.

Output (--out): a folder that this project and Python mlx-whisper both load:
  config.json          openai-whisper ModelDimensions keys, model_type, and
                       `quantization` {group_size, bits} when quantized
  weights.safetensors  mlx-whisper names; conv weights channels-last
  tokenizer files      copied from the input folder when present

The output appears only when complete (written to a temporary folder, then
renamed); an existing output is replaced only with --force.";

#[derive(clap::Args)]
struct ConvertArgs {
    /// Checkpoint file or model folder to read.
    #[arg(long = "from", value_name = "PATH")]
    from: PathBuf,
    /// Model folder to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Floating-point type of the written weights.
    #[arg(long, value_enum, default_value_t = DtypeArg::F16)]
    dtype: DtypeArg,
    /// Affine-quantize linear and embedding weights (norms, convolutions and
    /// positional tables stay unquantized).
    #[arg(long, value_enum)]
    quantize: Option<QuantizeArg>,
    /// Quantization group size.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::PossibleValuesParser::new(["32", "64", "128"]).map(|s| s.parse::<i32>().expect("listed values are numbers")))]
    group_size: i32,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum DtypeArg {
    F32,
    F16,
    Bf16,
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum QuantizeArg {
    Q4,
    Q8,
}

fn run_convert(args: ConvertArgs, quiet: bool) -> Result<()> {
    use asr_converters::whisper::{convert_whisper, OutputDtype, Quantization, WriteOptions};
    let opts = WriteOptions {
        dtype: match args.dtype {
            DtypeArg::F32 => OutputDtype::F32,
            DtypeArg::F16 => OutputDtype::F16,
            DtypeArg::Bf16 => OutputDtype::BF16,
        },
        quantization: args.quantize.map(|q| Quantization {
            bits: match q {
                QuantizeArg::Q4 => 4,
                QuantizeArg::Q8 => 8,
            },
            group_size: args.group_size,
        }),
        force: args.force,
    };
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} tensors")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("converting");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let loaded = convert_whisper(&args.from, &args.out, &opts, &progress)?;
    bar.finish_and_clear();
    tracing::info!(layout = ?loaded.layout, dims = ?loaded.weights.dims, "converted");
    eprintln!(
        "wrote {} ({} tensors from a {:?} checkpoint)",
        args.out.display(),
        loaded.weights.tensors.len(),
        loaded.layout
    );
    Ok(())
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    // One line per cause, without a backtrace: errors here are for users.
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info => print_info(),
        Command::Convert(args) => run_convert(args, cli.quiet),
        Command::Bench {
            no_peer,
            peer_python,
        } => run_bench(no_peer, peer_python),
    }
}
