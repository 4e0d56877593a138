//! The multipart form of `POST /v1/audio/transcriptions` and
//! `/v1/audio/translations`, with OpenAI's field names, read and checked
//! field by field: a field the endpoint does not take is an error rather
//! than ignored, so a misspelt option is never silently dropped.

use axum::extract::multipart::{Multipart, MultipartError};
use axum::http::StatusCode;

use super::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Transcriptions,
    Translations,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Transcriptions => "/v1/audio/transcriptions",
            Endpoint::Translations => "/v1/audio/translations",
        }
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::Transcriptions => &[
                "file",
                "model",
                "language",
                "prompt",
                "response_format",
                "temperature",
                "timestamp_granularities[]",
                "stream",
            ],
            Endpoint::Translations => &[
                "file",
                "model",
                "prompt",
                "response_format",
                "temperature",
                "stream",
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

impl ResponseFormat {
    fn parse(value: &str) -> Option<ResponseFormat> {
        Some(match value {
            "json" => ResponseFormat::Json,
            "text" => ResponseFormat::Text,
            "srt" => ResponseFormat::Srt,
            "verbose_json" => ResponseFormat::VerboseJson,
            "vtt" => ResponseFormat::Vtt,
            _ => return None,
        })
    }
}

/// The uploaded audio file.
pub struct Upload {
    /// The client's file name (its last component), which errors name.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A transcription or translation request.
pub struct TranscriptionForm {
    pub file: Upload,
    pub model: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub response_format: ResponseFormat,
    pub temperature: Option<f32>,
    /// `timestamp_granularities[]` named `word`.
    pub word_timestamps: bool,
    /// Our extension: progress as server-sent events.
    pub stream: bool,
}

impl TranscriptionForm {
    /// Reads the form; the file may hold at most `max_upload` bytes.
    pub async fn read(
        endpoint: Endpoint,
        mut multipart: Multipart,
        max_upload: usize,
    ) -> Result<TranscriptionForm, ApiError> {
        let mut file = None;
        let mut text = Vec::<(&'static str, String)>::new();
        let mut granularities = Vec::new();
        while let Some(mut field) = multipart.next_field().await.map_err(form_error)? {
            let name = field.name().unwrap_or_default().to_string();
            let Some(&known) = endpoint
                .fields()
                .iter()
                .find(|&&f| f == name || f.strip_suffix("[]") == Some(name.as_str()))
            else {
                return Err(ApiError::invalid(
                    &name,
                    format!(
                        "unknown field {name:?}: {} takes {}",
                        endpoint.path(),
                        endpoint.fields().join(", ")
                    ),
                )
                .code("unknown_parameter"));
            };
            if known == "file" {
                let name = field
                    .file_name()
                    .and_then(|n| n.rsplit(['/', '\\']).next())
                    .filter(|n| !n.is_empty())
                    .unwrap_or("file")
                    .to_string();
                let (mut bytes, mut size) = (Vec::new(), 0);
                while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                    size += chunk.len();
                    // Past the limit the rest is read and dropped, so that
                    // the client, still sending, gets the answer.
                    if size <= max_upload {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                if size > max_upload {
                    return Err(too_large(max_upload));
                }
                file = Some(Upload { name, bytes });
            } else {
                let value = field.text().await.map_err(form_error)?;
                if known == "timestamp_granularities[]" {
                    granularities.push(value);
                } else {
                    text.push((known, value));
                }
            }
        }
        let take = |key: &str| {
            text.iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let file = file.ok_or_else(|| {
            ApiError::invalid(
                "file",
                "no audio: the form needs a `file` field holding the recording",
            )
        })?;
        if file.bytes.is_empty() {
            return Err(ApiError::invalid(
                "file",
                format!("{}: the uploaded file is empty", file.name),
            ));
        }
        let response_format = match take("response_format") {
            None => ResponseFormat::Json,
            Some(value) => ResponseFormat::parse(&value).ok_or_else(|| {
                ApiError::invalid(
                    "response_format",
                    format!("response_format {value:?}: one of json, text, srt, verbose_json, vtt"),
                )
            })?,
        };
        let temperature = take("temperature")
            .map(|value| match value.parse::<f32>() {
                Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
                _ => Err(ApiError::invalid(
                    "temperature",
                    format!("temperature {value:?}: a number between 0 and 1"),
                )),
            })
            .transpose()?;
        let mut word_timestamps = false;
        for granularity in &granularities {
            match granularity.trim() {
                "word" => word_timestamps = true,
                "segment" => {}
                other => {
                    return Err(ApiError::invalid(
                        "timestamp_granularities",
                        format!("timestamp_granularities[] {other:?}: word or segment"),
                    ))
                }
            }
        }
        if !granularities.is_empty() && response_format != ResponseFormat::VerboseJson {
            return Err(ApiError::invalid(
                "timestamp_granularities",
                "timestamp_granularities[] needs response_format verbose_json",
            ));
        }
        let stream = match take("stream").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::invalid(
                    "stream",
                    format!("stream {other:?}: true or false"),
                ))
            }
        };
        Ok(TranscriptionForm {
            file,
            model: take("model"),
            language: take("language").map(|l| l.to_lowercase()),
            prompt: take("prompt"),
            response_format,
            temperature,
            word_timestamps,
            stream,
        })
    }
}

fn too_large(max_upload: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is over this server's limit of {:.1} MB (serve.max_upload_mb)",
            max_upload as f64 / 1e6
        ),
    )
    .param("file")
}

/// A form that cannot be read: too large (the body limit), or not a
/// multipart form at all.
fn form_error(e: MultipartError) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is over this server's limit (serve.max_upload_mb): {e}"),
        )
        .param("file"),
        status => ApiError::new(
            status,
            format!(
                "cannot read the multipart/form-data body: {}",
                e.body_text()
            ),
        ),
    }
}
