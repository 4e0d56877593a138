//! What `GET /metrics` reports, in Prometheus' text format: requests by
//! endpoint and status, their latency, the queue, the audio transcribed and
//! how fast (the real-time factor: seconds of work per second of audio).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: u16,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    pub queued: Gauge,
    pub running: Gauge,
    /// Requests whose client left (or whose time ran out) before the model
    /// took them: they never reached it.
    pub abandoned: Counter,
    audio: Counter<f64, AtomicU64>,
    busy: Counter<f64, AtomicU64>,
    real_time_factor: Gauge<f64, AtomicU64>,
    batch: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::with_prefix("mlx_asr"),
            requests: Family::default(),
            latency: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            queued: Gauge::default(),
            running: Gauge::default(),
            abandoned: Counter::default(),
            audio: Counter::default(),
            busy: Counter::default(),
            real_time_factor: Gauge::default(),
            batch: Histogram::new((1..=8).map(f64::from)),
        };
        metrics.registered()
    }

    /// Every metric in the registry, under its name and help.
    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "requests",
            "HTTP requests answered, by endpoint and status",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from a transcription request's arrival to its answer",
            self.latency.clone(),
        );
        r.register(
            "queue_depth",
            "Transcription requests waiting for the model",
            self.queued.clone(),
        );
        r.register(
            "running",
            "Transcription requests the model is working on",
            self.running.clone(),
        );
        r.register(
            "abandoned",
            "Requests dropped from the queue because their client left or their time ran out",
            self.abandoned.clone(),
        );
        r.register(
            "audio_seconds",
            "Seconds of audio transcribed",
            self.audio.clone(),
        );
        r.register(
            "busy_seconds",
            "Seconds the model spent transcribing",
            self.busy.clone(),
        );
        r.register(
            "real_time_factor",
            "Seconds of work per second of audio, over the last batch",
            self.real_time_factor.clone(),
        );
        r.register(
            "batch_size",
            "Requests transcribed together",
            self.batch.clone(),
        );
        self
    }

    pub fn answered(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    pub fn transcription_took(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// A batch of `requests` recordings holding `audio` seconds took `busy`
    /// seconds.
    pub fn batch_done(&self, requests: usize, audio: f64, busy: f64) {
        self.batch.observe(requests as f64);
        self.audio.inc_by(audio);
        self.busy.inc_by(busy);
        if audio > 0.0 {
            self.real_time_factor.set(busy / audio);
        }
    }

    /// The last batch's real-time factor, if any batch ran.
    pub fn last_real_time_factor(&self) -> Option<f64> {
        Some(self.real_time_factor.get()).filter(|&rtf| rtf > 0.0)
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
