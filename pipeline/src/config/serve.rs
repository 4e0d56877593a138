//! The `[serve]` table: where `pipeline serve` listens, which models it
//! serves, and the limits that keep it responsive under load.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeOptions {
    /// The address to listen on; off loopback an API key is required.
    pub host: String,
    pub port: u16,
    /// More models, by the id requests name them with, each a model spec as
    /// the top-level `model` takes (the other settings are shared).
    pub models: BTreeMap<String, String>,
    /// Requests waiting for the model at most; more are answered 429.
    pub max_queued: usize,
    /// Seconds of audio waiting at most (what the queue holds in memory:
    /// 64 KB per second); more are answered 429.
    pub max_queued_audio: f64,
    /// The largest upload, in megabytes (OpenAI's limit is 25); larger ones
    /// are answered 413.
    pub max_upload_mb: f64,
    /// The longest recording a request may carry, in seconds; longer ones
    /// are answered 400.
    pub max_audio_seconds: f64,
    /// Seconds a request may take, waiting included; then it is answered
    /// 504 and dropped from the queue.
    pub timeout_seconds: f64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 8080,
            models: BTreeMap::new(),
            max_queued: 64,
            max_queued_audio: 3600.0,
            max_upload_mb: 25.0,
            max_audio_seconds: 1800.0,
            timeout_seconds: 600.0,
        }
    }
}

impl ServeOptions {
    /// Every problem with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let positive = [
            ("max_queued_audio", self.max_queued_audio),
            ("max_upload_mb", self.max_upload_mb),
            ("max_audio_seconds", self.max_audio_seconds),
            ("timeout_seconds", self.timeout_seconds),
        ];
        for (key, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                problems.push(format!("serve.{key} = {value}: a positive number"));
            }
        }
        if self.max_queued == 0 {
            problems.push("serve.max_queued = 0: at least 1".into());
        }
        if self.max_audio_seconds > self.max_queued_audio {
            problems.push(format!(
                "serve.max_audio_seconds = {}: above serve.max_queued_audio = {}, so such a \
                 recording could never be queued",
                self.max_audio_seconds, self.max_queued_audio
            ));
        }
        for (id, spec) in &self.models {
            if id.trim().is_empty() || spec.trim().is_empty() {
                problems.push(format!("serve.models: {id:?} = {spec:?}: an empty name"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_problems_name_their_key() {
        assert!(ServeOptions::default().problems().is_empty());
        let options = ServeOptions {
            max_queued: 0,
            timeout_seconds: f64::NAN,
            max_audio_seconds: 7200.0,
            ..ServeOptions::default()
        };
        let problems = options.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("serve.timeout_seconds = NaN"));
        assert!(problems[1].starts_with("serve.max_queued = 0"));
        assert!(problems[2].starts_with("serve.max_audio_seconds = 7200"));
    }
}
