//! The `pipeline` command-line tool.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use asr_pipeline::plan::StagePlan;
use asr_pipeline::stages::output;
use asr_pipeline::{
    Config, DeviceName, Format, Pipeline, PipelineError, Progress, Quantization, Quantize, Task,
    Transcript,
};
use indicatif::{ProgressBar, ProgressStyle};
use mlx_asr::bench;

mod regress_cmd;

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
    /// Transcribe the audio files a TOML config names.
    Run(RunArgs),
    /// Validate a run config and print its stages, without reading audio.
    Check {
        /// The run's TOML configuration.
        config: PathBuf,
    },
    /// Transcribe a manifest's audio set and compare with stored snapshots.
    Regress(regress_cmd::RegressArgs),
    /// Download a registry model (tiny.en, base) into the cache; print its folder.
    Fetch {
        /// Registry model: tiny.en (English) or base (multilingual).
        name: String,
    },
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

#[derive(clap::Args)]
struct RunArgs {
    /// The run's TOML configuration (see README: Configuration).
    config: PathBuf,
    /// Audio file(s) or directories to transcribe instead of the config's `input`.
    #[arg(long)]
    input: Vec<PathBuf>,
    /// Directory for output files instead of the config's `output_dir`.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Output format(s) instead of the config's `formats`.
    #[arg(long = "format", value_enum)]
    formats: Vec<FormatArg>,
    /// Model instead of the config's `model`: registry name, Hugging Face repo
    /// (org/name[@rev]), MLX folder or checkpoint path.
    #[arg(long)]
    model: Option<String>,
    /// Device instead of the config's `device`.
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
    /// Spoken language code instead of `decode.language` (multilingual models).
    #[arg(long)]
    language: Option<String>,
    /// Task instead of `decode.task`.
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// Transcribe files again even when all their outputs exist.
    #[arg(long)]
    force: bool,
    /// Print where the time went, per stage, after each file (stderr).
    #[arg(long)]
    profile: bool,
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum TaskArg {
    Transcribe,
    Translate,
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum FormatArg {
    Txt,
    Json,
    Srt,
    Vtt,
    Tsv,
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    Gpu,
}

/// The config file with command-line overrides applied.
fn run_config(args: &RunArgs) -> Result<Config> {
    let mut config = Config::from_file(&args.config)?;
    if !args.input.is_empty() {
        config.inputs = args.input.clone();
    }
    if let Some(dir) = &args.output_dir {
        config.output_dir = Some(dir.clone());
    }
    if !args.formats.is_empty() {
        config.formats = args
            .formats
            .iter()
            .map(|f| match f {
                FormatArg::Txt => Format::Txt,
                FormatArg::Json => Format::Json,
                FormatArg::Srt => Format::Srt,
                FormatArg::Vtt => Format::Vtt,
                FormatArg::Tsv => Format::Tsv,
            })
            .collect();
    }
    if let Some(model) = &args.model {
        config.model = model.clone();
    }
    if let Some(device) = args.device {
        config.device = match device {
            DeviceArg::Cpu => DeviceName::Cpu,
            DeviceArg::Gpu => DeviceName::Gpu,
        };
    }
    if let Some(language) = &args.language {
        config.decode.language = Some(language.clone());
    }
    if let Some(task) = args.task {
        config.decode.task = match task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        };
    }
    StagePlan::of_config(&config).map_err(|problems| {
        anyhow::anyhow!("{}: {}", args.config.display(), problems.join("; "))
    })?;
    Ok(config)
}

/// `pipeline check`: the planned stages of a config, or all its problems.
fn check_config(path: &std::path::Path) -> Result<()> {
    let config = Config::from_file(path)?;
    let plan = StagePlan::of_config(&config)
        .map_err(|problems| anyhow::anyhow!("{}: {}", path.display(), problems.join("; ")))?;
    print!("{plan}");
    let files = config.input_files()?;
    println!("{}: ok, {} input file(s)", path.display(), files.len());
    Ok(())
}

/// A stderr progress bar (indicatif hides it when stderr is not a terminal).
fn progress_bar(quiet: bool, template: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn run_transcription(args: RunArgs, quiet: bool) -> Result<()> {
    let config = run_config(&args)?;
    let files = config
        .input_files()
        .with_context(|| format!("{}: listing the input directories", args.config.display()))?;
    let started = std::time::Instant::now();
    let pipeline = Pipeline::from_config(&config)
        .with_context(|| format!("loading model {}", config.model))?;
    // scripts/bench-peers reads these two timings from `-v` output.
    tracing::info!(secs = started.elapsed().as_secs_f64(), "model loaded");
    // After loading: asked before, the weights came from the heap as well
    // and decoding was slower (blocks +0.1-0.2, vocabulary +0.05-0.15 ms
    // per token in 6 runs; not traced further).
    if !mlx::keep_freed_memory() {
        tracing::debug!("freed memory goes back to the OS as the C library decides");
    }
    let pending: Vec<&std::path::Path> = files
        .iter()
        .map(PathBuf::as_path)
        .filter(|input| {
            let done = !args.force && outputs_complete(&config, &stem_of(input));
            if done {
                tracing::warn!(input = %input.display(), "skipped: its outputs exist (--force redoes it)");
            }
            !done
        })
        .collect();
    let mut failed = Vec::new();
    for group in pending.chunks(config.decode.batch_size.max(1)) {
        let transcripts = transcribe_group(&pipeline, group, quiet);
        for (input, transcript) in group.iter().zip(transcripts) {
            let reported = transcript
                .with_context(|| format!("transcribing {}", input.display()))
                .and_then(|t| report(&config, &t, &stem_of(input), args.profile));
            if let Err(e) = reported {
                eprintln!("error: {e:#}");
                failed.push(input.display().to_string());
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} files failed: {}",
            failed.len(),
            files.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Per-stage times of one file, the decoder split by kind of work, each
/// with its share of the whole.
fn profile_table(t: &asr_pipeline::Timings) -> String {
    let after: f64 = t.after_recognition.iter().map(|(_, secs)| secs).sum();
    let total = t.transcribe + after;
    let per = |n: usize| n.max(1) as f64;
    let ms_per_token = |secs: f64| format!("{:.2} ms/token", 1e3 * secs / per(t.tokens));
    let rows = [
        ("audio + log-mel", t.mel, String::new()),
        (
            "encoder",
            t.encoder,
            format!(
                "{} windows, {:.3} s/window",
                t.windows,
                t.encoder / per(t.windows)
            ),
        ),
        (
            "decoder",
            t.decoder,
            format!(
                "{} tokens, {}{}",
                t.tokens,
                ms_per_token(t.decoder),
                match t.batched_windows {
                    0 => String::new(),
                    n => format!(", {n}/{} windows batched", t.windows),
                }
            ),
        ),
        (
            "  prompt per pass",
            t.decoder_prompt,
            format!(
                "{} passes, {:.1} ms/pass",
                t.decoder_passes,
                1e3 * t.decoder_prompt / per(t.decoder_passes)
            ),
        ),
        ("  blocks", t.decoder_blocks, ms_per_token(t.decoder_blocks)),
        (
            "  vocabulary projection",
            t.decoder_logits,
            ms_per_token(t.decoder_logits),
        ),
        (
            "  token rules + pick",
            t.decoder_picking,
            ms_per_token(t.decoder_picking),
        ),
        ("word timestamps", t.word_timestamps, String::new()),
        (
            "other (segments, prompts)",
            t.transcribe - t.mel - t.encoder - t.decoder - t.word_timestamps,
            String::new(),
        ),
    ];
    let rows = rows.into_iter().chain(
        t.after_recognition
            .iter()
            .map(|(name, secs)| (name.as_str(), *secs, String::new())),
    );
    let mut out = format!("{:<26} {:>9} {:>7}\n", "stage", "seconds", "share");
    for (stage, secs, note) in rows {
        let share = 100.0 * secs / total.max(f64::EPSILON);
        out += &format!("{stage:<26} {secs:>9.3} {share:>6.1}%  {note}\n");
    }
    out += &format!(
        "{:<26} {total:>9.3} {:>7}  {:.1} s of audio, real-time factor {:.3}\n",
        "total",
        "",
        t.audio,
        total / t.audio.max(f64::EPSILON)
    );
    out
}

/// Whether every output of `stem` is already written (outputs are renamed
/// into place whole, so an existing file is a complete one).
fn outputs_complete(config: &Config, stem: &str) -> bool {
    config.output_dir.as_ref().is_some_and(|dir| {
        config
            .formats
            .iter()
            .all(|f| dir.join(format!("{stem}.{}", f.extension())).is_file())
    })
}

fn stem_of(input: &std::path::Path) -> String {
    input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audio".into())
}

/// Transcribes `group` together (see `Pipeline::transcribe_files`), one
/// progress bar over the seconds of all of its files.
fn transcribe_group(
    pipeline: &Pipeline,
    group: &[&std::path::Path],
    quiet: bool,
) -> Vec<Result<Transcript, PipelineError>> {
    let bar = progress_bar(quiet, "{msg} [{bar:30}] {pos}/{len} s of audio");
    bar.set_message(match group {
        [one] => one.display().to_string(),
        _ => format!("{} files", group.len()),
    });
    let seen = std::cell::RefCell::new(vec![(0.0, 0.0); group.len()]);
    let progress = |i: usize, p: Progress| {
        let mut seen = seen.borrow_mut();
        seen[i] = (p.done, p.total.unwrap_or(p.done));
        let (done, total) = seen.iter().fold((0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1));
        bar.set_length(f64::ceil(total) as u64);
        bar.set_position(f64::floor(done) as u64);
    };
    let started = std::time::Instant::now();
    let transcripts = pipeline.transcribe_files(group, &progress);
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        files = group.len(),
        "transcribed"
    );
    bar.finish_and_clear();
    transcripts
}

/// Prints the transcript (and its profile) and writes its output files.
fn report(config: &Config, transcript: &Transcript, stem: &str, profile: bool) -> Result<()> {
    println!("{}", transcript.text.trim());
    if profile {
        eprint!("{}", profile_table(&transcript.timings));
    }
    if let Some(dir) = &config.output_dir {
        for &format in &config.formats {
            let subtitles = &config.subtitles;
            let path =
                output::write(transcript, format, subtitles, dir, stem).with_context(|| {
                    format!(
                        "writing {} output into {}",
                        format.extension(),
                        dir.display()
                    )
                })?;
            tracing::info!(path = %path.display(), "wrote");
        }
    }
    Ok(())
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
    /// positional tables stay unquantized): none, q8, q4, or int8 (stored as
    /// q8; int8 activations are a run setting).
    #[arg(long, value_name = "NAME")]
    quantize: Option<Quantize>,
    /// Quantization group size (32, 64 or 128).
    #[arg(long, default_value_t = Quantization::DEFAULT_GROUP_SIZE, value_parser = parse_group_size)]
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

fn parse_group_size(text: &str) -> Result<i32, String> {
    let n = text.parse().map_err(|e| format!("{e}"))?;
    Quantization::check_group_size(n).map_err(|e| e.to_string())?;
    Ok(n)
}

fn run_convert(args: ConvertArgs, quiet: bool) -> Result<()> {
    use asr_converters::whisper::{convert_whisper, OutputDtype, WriteOptions};
    let opts = WriteOptions {
        dtype: match args.dtype {
            DtypeArg::F32 => OutputDtype::F32,
            DtypeArg::F16 => OutputDtype::F16,
            DtypeArg::Bf16 => OutputDtype::BF16,
        },
        quantization: args
            .quantize
            .and_then(|q| q.with_group_size(args.group_size).weights),
        force: args.force,
    };
    let bar = progress_bar(quiet, "{msg} [{bar:40}] {pos}/{len} tensors");
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
        // Colours only for a terminal: logs piped into files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    tracing::info!("measuring the CPU kernels against MLX's ops");
    let kernels = bench::measure_kernels().context("kernel benchmark failed")?;
    println!();
    println!(
        "CPU kernels: {} thread(s); the mlx op column is MLX's own CPU op",
        mlx::kernels::custom_kernel_threads()
    );
    print!("{}", bench::render_kernels(&kernels));
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
        Command::Run(args) => run_transcription(args, cli.quiet),
        Command::Check { config } => check_config(&config),
        Command::Regress(args) => regress_cmd::run(args, cli.quiet),
        Command::Fetch { name } => {
            println!("{}", asr_converters::registry::fetch(&name)?.display());
            Ok(())
        }
        Command::Info => print_info(),
        Command::Convert(args) => run_convert(args, cli.quiet),
        Command::Bench {
            no_peer,
            peer_python,
        } => run_bench(no_peer, peer_python),
    }
}
