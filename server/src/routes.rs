//! The HTTP surface: OpenAI's audio and model endpoints (behind the API key
//! when there is one), `/health`, `/metrics` and the web page at `/`.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asr_pipeline::stages::audio::{AudioStream, SAMPLE_RATE};
use asr_pipeline::stages::output::SubtitleOptions;
use asr_pipeline::stages::transcribe::TranscribeError;
use asr_pipeline::{DecodeOptions, Pipeline, PipelineError, Task, Transcript};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::timeout_at;

use crate::metrics::Metrics;
use crate::models::Models;
use crate::openai::{Answer, ApiError, Endpoint, ResponseFormat, TranscriptionForm, Upload};
use crate::scheduler::{Job, JobEvent, Scheduler};

/// What a multipart form adds around the file at most, beyond which the
/// body limit answers 413 before the file is read.
const FORM_OVERHEAD: usize = 1 << 20;

/// Per-request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_upload_bytes: usize,
    pub max_audio_seconds: f64,
    pub timeout: Duration,
}

/// What every handler shares.
pub struct App {
    pub models: Arc<Models>,
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub api_key: Option<String>,
    pub subtitles: SubtitleOptions,
}

pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/translations", post(translations))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(one_model))
        .layer(middleware::from_fn_with_state(app.clone(), require_key));
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .layer(DefaultBodyLimit::max(
            app.limits.max_upload_bytes + FORM_OVERHEAD,
        ))
        .with_state(app)
}

/// `Authorization: Bearer KEY` on every `/v1` request when the server has a key.
async fn require_key(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(key) = &app.api_key else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.map(str::trim) == Some(key.as_str()) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or wrong API key: send the header `Authorization: Bearer KEY`",
    )
    .code("invalid_api_key")
    .into_response()
}

/// Counts every answer by route and status.
async fn count(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    app.metrics.answered(&endpoint, response.status().as_u16());
    response
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page/index.html"))
}

async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    let default = &app.models.get(0).pipeline;
    Json(json!({
        "status": "ok",
        "models": app.models.iter().map(|m| &m.id).collect::<Vec<_>>(),
        "queued": app.scheduler.queued(),
        "running": app.metrics.running.get(),
        "word_timestamps": default.decode_options().word_timestamps || default.stages().has("align"),
        "diarization": default.stages().has("diarize"),
    }))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    // The queue's depth as of now, without the jobs whose clients left.
    app.scheduler.queued();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "mlx-asr"})
}

async fn list_models(State(app): State<Arc<App>>) -> Json<Value> {
    let data: Vec<Value> = app.models.iter().map(|m| model_object(&m.id)).collect();
    Json(json!({"object": "list", "data": data}))
}

async fn one_model(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    match app.models.find(Some(&id)) {
        Some(i) => Json(model_object(&app.models.get(i).id)).into_response(),
        None => unknown_model(&id).into_response(),
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {} {} (see GET /v1/models, POST /v1/audio/transcriptions)",
            request.method(),
            request.uri().path()
        ),
    )
}

fn unknown_model(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("the model {id:?} is not served here; GET /v1/models lists those that are"),
    )
    .param("model")
    .code("model_not_found")
}

async fn transcriptions(
    State(app): State<Arc<App>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    transcribe(app, Endpoint::Transcriptions, multipart).await
}

async fn translations(
    State(app): State<Arc<App>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    transcribe(app, Endpoint::Translations, multipart).await
}

async fn transcribe(
    app: Arc<App>,
    endpoint: Endpoint,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let arrived = Instant::now();
    let deadline = tokio::time::Instant::now() + app.limits.timeout;
    let accepted = match accept(&app, endpoint, multipart).await {
        Ok(accepted) => accepted,
        Err(e) => return e.into_response(),
    };
    let Accepted {
        received,
        answer,
        format,
        stream,
    } = accepted;
    if stream {
        return Sse::new(events_of(app, received, deadline, answer))
            .keep_alive(KeepAlive::default())
            .into_response();
    }
    match wait_for(received, deadline, app.limits.timeout).await {
        Ok(transcript) => {
            app.metrics
                .transcription_took(arrived.elapsed().as_secs_f64());
            answer.respond(&transcript, format, &app.subtitles)
        }
        Err(e) => e.into_response(),
    }
}

/// A request read, checked and queued: where its news arrive and how it is
/// answered.
struct Accepted {
    received: UnboundedReceiver<JobEvent>,
    answer: Answer,
    format: ResponseFormat,
    /// Answered with server-sent events (`stream=true`).
    stream: bool,
}

/// Reads the form, checks the model and settings, decodes the upload and
/// queues it; every refusal says why.
async fn accept(
    app: &App,
    endpoint: Endpoint,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Accepted, ApiError> {
    let multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be a multipart/form-data form: {}",
                e.body_text()
            ),
        )
    })?;
    let form = TranscriptionForm::read(endpoint, multipart, app.limits.max_upload_bytes).await?;
    let model = app
        .models
        .find(form.model.as_deref())
        .ok_or_else(|| unknown_model(form.model.as_deref().unwrap_or_default()))?;
    let pipeline = &app.models.get(model).pipeline;
    let options = decode_options(&form, endpoint, pipeline);
    let problems = pipeline.check_decode(&options);
    if !problems.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, problems.join("; ")));
    }
    let samples = read_audio(form.file, app.limits.max_audio_seconds).await?;
    let answer = Answer {
        task: options.task,
        duration: samples.len() as f64 / f64::from(SAMPLE_RATE),
        words: form.word_timestamps,
    };
    let (events, received) = unbounded_channel();
    let job = Job {
        model,
        options,
        samples,
        events,
    };
    app.scheduler.submit(job).map_err(|full| {
        let seconds = full.retry_after.as_secs();
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the server's queue is full (serve.max_queued, serve.max_queued_audio); \
                     retry in {seconds} s"
                ),
            )
            .code("queue_full")
        }
    })?;
    Ok(Accepted {
        received,
        answer,
        format: form.response_format,
        stream: form.stream,
    })
}

/// The pipeline's decode settings with the request's in their place.
/// OpenAI's temperature 0 keeps the fallback temperatures, as its API does.
fn decode_options(
    form: &TranscriptionForm,
    endpoint: Endpoint,
    pipeline: &Pipeline,
) -> DecodeOptions {
    let mut options = pipeline.decode_options().clone();
    if let Some(language) = &form.language {
        options.language = Some(language.clone());
    }
    if let Some(prompt) = &form.prompt {
        options.initial_prompt = Some(prompt.clone());
    }
    if let Some(t) = form.temperature.filter(|&t| t > 0.0) {
        options.temperature = vec![t];
    }
    if endpoint == Endpoint::Translations {
        options.task = Task::Translate;
    }
    // An aligner times the words itself.
    if form.word_timestamps && !pipeline.stages().has("align") {
        options.word_timestamps = true;
    }
    options
}

/// The upload decoded to 16 kHz mono, off the async threads: a file that
/// is not audio, is cut short, holds nothing or runs over the limit is
/// refused with the reason.
async fn read_audio(upload: Upload, max_seconds: f64) -> Result<Vec<f32>, ApiError> {
    let decode = move || {
        let bad =
            |e: asr_pipeline::stages::audio::AudioError| ApiError::invalid("file", e.to_string());
        let too_long = |seconds: f64| {
            ApiError::invalid(
                "file",
                format!(
                    "{}: {seconds:.0} s of audio or more, over this server's limit of \
                     {max_seconds:.0} s (serve.max_audio_seconds)",
                    upload.name
                ),
            )
        };
        let stream = AudioStream::from_bytes(Path::new(&upload.name), upload.bytes)
            .map_err(bad)?
            .refuse_truncated();
        if let Some(seconds) = stream.duration().filter(|&d| d > max_seconds) {
            return Err(too_long(seconds));
        }
        let most = (max_seconds * f64::from(SAMPLE_RATE)) as usize;
        let mut samples = Vec::new();
        for block in stream {
            samples.extend_from_slice(&block.map_err(bad)?);
            if samples.len() > most {
                return Err(too_long(samples.len() as f64 / f64::from(SAMPLE_RATE)));
            }
        }
        Ok(samples)
    };
    tokio::task::spawn_blocking(decode).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("decoding the upload: {e}"),
        )
    })?
}

/// The job's transcript, or why there is none.
async fn wait_for(
    mut received: UnboundedReceiver<JobEvent>,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Transcript, ApiError> {
    loop {
        match timeout_at(deadline, received.recv()).await {
            Err(_) => return Err(timed_out(timeout)),
            Ok(None) => return Err(stopped()),
            Ok(Some(JobEvent::Done(result))) => return (*result).map_err(failed),
            Ok(Some(_)) => {}
        }
    }
}

fn timed_out(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "not transcribed within this server's limit of {} s, waiting included \
             (serve.timeout_seconds)",
            timeout.as_secs_f64()
        ),
    )
    .code("timeout")
}

fn stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server stopped before transcribing the request",
    )
}

/// A transcription that failed: the recording's fault (400) or the
/// server's (500).
fn failed(e: PipelineError) -> ApiError {
    let status = match e {
        PipelineError::Invalid(_)
        | PipelineError::Audio(_)
        | PipelineError::Transcribe(TranscribeError::Options(_) | TranscribeError::Audio(_)) => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// A streamed request's events (`stream=true`): its place in the queue,
/// progress, then the transcript (verbose_json, with every output format)
/// or an error. The client leaving drops the stream, and with it the job.
fn events_of(
    app: Arc<App>,
    received: UnboundedReceiver<JobEvent>,
    deadline: tokio::time::Instant,
    answer: Answer,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let arrived = Instant::now();
    futures_util::stream::unfold(Some(received), move |received| {
        let app = app.clone();
        async move {
            let mut received = received?;
            let error = |e: ApiError| {
                let mut body = e.body();
                body["type"] = json!("error");
                body
            };
            let (data, rest) = match timeout_at(deadline, received.recv()).await {
                Err(_) => (error(timed_out(app.limits.timeout)), None),
                Ok(None) => (error(stopped()), None),
                Ok(Some(JobEvent::Queued { ahead })) => (
                    json!({"type": "transcript.queued", "position": ahead}),
                    Some(received),
                ),
                Ok(Some(JobEvent::Progress(p))) => (
                    json!({"type": "transcript.progress", "done": p.done, "total": p.total}),
                    Some(received),
                ),
                Ok(Some(JobEvent::Done(result))) => match *result {
                    Ok(t) => {
                        app.metrics
                            .transcription_took(arrived.elapsed().as_secs_f64());
                        let mut body = answer.verbose(&t);
                        body["type"] = json!("transcript.text.done");
                        body["outputs"] = answer.outputs(&t, &app.subtitles);
                        (body, None)
                    }
                    Err(e) => (error(failed(e)), None),
                },
            };
            Some((Ok(Event::default().data(data.to_string())), rest))
        }
    })
}
