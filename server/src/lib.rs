//! `pipeline serve`: an OpenAI-compatible transcription server.
//!
//! ```text
//! HTTP (axum) → form + upload decoding → bounded queue → one worker:
//!   batches of compatible requests → Pipeline::transcribe_many → answers
//! ```
//!
//! - [`openai`]: the request form, answer shapes and error body of OpenAI's
//!   `/v1/audio/transcriptions` and `/v1/audio/translations`;
//! - `scheduler`: the queue, its limits, and the worker that transcribes
//!   concurrent requests together so the recognizer decodes their windows
//!   side by side;
//! - `models`: the served models, loaded once and shared;
//! - `routes`: the endpoints, the API key, `/health`, `/metrics` and the
//!   web page at `/`.

mod metrics;
mod models;
pub mod openai;
mod routes;
mod scheduler;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use asr_pipeline::{Config, PipelineError};

pub use models::OPENAI_MODEL;
use routes::{App, Limits};
use scheduler::{QueueLimits, Scheduler};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid server settings: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot listen on {address}: {error}")]
    Bind {
        address: String,
        error: std::io::Error,
    },
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// A server bound to its address with its models loaded, not yet serving.
pub struct Server {
    app: Arc<App>,
    listener: std::net::TcpListener,
}

impl Server {
    /// Checks `config.serve`, binds `host:port` (an API key is required off
    /// loopback), then loads the models.
    pub fn new(config: &Config, api_key: Option<String>) -> Result<Server, ServeError> {
        let serve = &config.serve;
        let problems = serve.problems();
        if !problems.is_empty() {
            return Err(ServeError::Invalid(problems));
        }
        let address = format!("{}:{}", serve.host, serve.port);
        let listener = std::net::TcpListener::bind(&address)
            .map_err(|error| ServeError::Bind { address, error })?;
        let bound = listener.local_addr()?;
        let api_key = api_key.filter(|k| !k.trim().is_empty());
        if !bound.ip().is_loopback() && api_key.is_none() {
            return Err(ServeError::Invalid(vec![format!(
                "serve.host: {bound} is reachable from other machines: set an API key \
                 (--api-key or MLX_ASR_API_KEY) or listen on loopback"
            )]));
        }
        let metrics = Arc::new(metrics::Metrics::new());
        let models = Arc::new(models::Models::load(config)?);
        let scheduler = Scheduler::start(
            Arc::clone(&models),
            QueueLimits {
                jobs: serve.max_queued,
                audio_seconds: serve.max_queued_audio,
            },
            metrics.clone(),
        );
        let app = App {
            models,
            scheduler,
            metrics,
            limits: Limits {
                max_upload_bytes: (serve.max_upload_mb * 1e6) as usize,
                max_audio_seconds: serve.max_audio_seconds,
                timeout: Duration::from_secs_f64(serve.timeout_seconds),
            },
            api_key,
            subtitles: config.subtitles.clone(),
        };
        Ok(Server {
            app: Arc::new(app),
            listener,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes the requests already
    /// received (a second signal exits at once).
    pub fn run_until_signal(self) -> Result<(), ServeError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Uploads are decoded on the blocking threads: more of them than
        // cores would decode no faster, and each would keep a malloc arena.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores.min(4))
            .max_blocking_threads(cores)
            .enable_all()
            .build()?;
        runtime.block_on(self.run(shutdown_signal()))
    }

    /// Serves until `shutdown` resolves, then finishes the requests already
    /// received.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        axum::serve(listener, routes::router(self.app.clone()))
            .with_graceful_shutdown(shutdown)
            .await?;
        let app = self.app;
        tokio::task::spawn_blocking(move || app.scheduler.shutdown())
            .await
            .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
        Ok(())
    }
}

/// Resolves at the first SIGTERM or Ctrl-C; a second one exits the process.
async fn shutdown_signal() {
    let mut signals = Signals::new();
    signals.next().await;
    tracing::info!("stopping: finishing the requests received (a second signal exits now)");
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("exiting without finishing the requests received");
        std::process::exit(130);
    });
}

/// SIGINT and SIGTERM, watched once for the server's life (watching anew
/// would see the first signal again).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                interrupt: signal(SignalKind::interrupt()).expect("SIGINT can be watched"),
                terminate: signal(SignalKind::terminate()).expect("SIGTERM can be watched"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
