//! `pipeline serve`: the OpenAI-compatible transcription server and its web
//! page (see the `asr-server` crate).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use asr_pipeline::Config;
use asr_server::Server;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The TOML configuration: model, `[decode]`, `[vad]`, `[align]`,
    /// `[diarization]` and `[serve]` (address, more models, limits).
    config: PathBuf,
    /// Listen on this address instead of `serve.host` (127.0.0.1). Off
    /// loopback an API key is required.
    #[arg(long)]
    host: Option<String>,
    /// Listen on this port instead of `serve.port` (8080); 0 picks a free one.
    #[arg(long)]
    port: Option<u16>,
    /// Require `Authorization: Bearer KEY` on every /v1 request.
    #[arg(long, env = "MLX_ASR_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let mut config = Config::from_file(&args.config)?;
    if let Some(host) = args.host {
        config.serve.host = host;
    }
    if let Some(port) = args.port {
        config.serve.port = port;
    }
    let server =
        Server::new(&config, args.api_key).with_context(|| args.config.display().to_string())?;
    // The one line scripts wait for, with the port a `--port 0` got.
    println!("listening on http://{}", server.local_addr());
    std::io::stdout().flush()?;
    server.run_until_signal()?;
    Ok(())
}
