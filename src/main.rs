//! The `pipeline` command-line tool: the arguments, logging and the
//! dispatch to one module per subcommand under `cli/`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod cli;

use cli::{check, convert, diarize, fetch, info, regress, run, serve, stream};

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
    Run(run::RunArgs),
    /// Transcribe live audio (microphone, standard input or a file) as it
    /// arrives: partial text that may change, final text that does not.
    Stream(stream::StreamArgs),
    /// Serve OpenAI's /v1/audio/transcriptions (and a web page at /),
    /// transcribing concurrent requests together.
    Serve(serve::ServeArgs),
    /// Who spoke when: speaker turns (RTTM) without transcribing.
    Diarize(diarize::DiarizeArgs),
    /// Validate a run config and print its stages, without reading audio.
    Check(check::CheckArgs),
    /// Transcribe a manifest's audio set and compare with stored snapshots.
    Regress(regress::RegressArgs),
    /// Download a registry model (tiny.en, base) into the cache; print its folder.
    Fetch(fetch::FetchArgs),
    /// Print the MLX version, devices and which BLAS serves matrix products.
    Info,
    /// Convert a Whisper checkpoint into an MLX model folder.
    #[command(long_about = convert::LONG_HELP)]
    Convert(convert::ConvertArgs),
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    // One line per cause, without a backtrace: errors here are for users.
    match dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    if let Some(problem) = mlx::kernels::isa_env_problem() {
        anyhow::bail!("{problem}");
    }
    match cli.command {
        Command::Run(args) => run::run(args, cli.quiet),
        Command::Stream(args) => stream::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Diarize(args) => diarize::run(&args, cli.quiet),
        Command::Check(args) => check::run(&args),
        Command::Regress(args) => regress::run(args, cli.quiet),
        Command::Fetch(args) => fetch::run(&args),
        Command::Info => info::run(),
        Command::Convert(args) => convert::run(args, cli.quiet),
    }
}
