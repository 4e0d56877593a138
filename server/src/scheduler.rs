//! The queue between the HTTP handlers and the model. Handlers submit jobs
//! (a recording and its decode settings); one worker thread takes the
//! oldest job and every other queued job for the same model with the same
//! settings, up to `decode.batch_size`, and transcribes them together, so
//! the recognizer decodes their windows side by side. MLX evaluation is
//! not re-entrant, so one worker serves every model.
//!
//! The queue is bounded in requests and in seconds of audio (what it holds
//! in memory); a full queue refuses a job with an estimate of when to come
//! back. A job whose handler is gone (its client disconnected, its time ran
//! out) is dropped before it reaches the model.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use asr_pipeline::stages::audio::{Recording, SAMPLE_RATE};
use asr_pipeline::{DecodeOptions, PipelineError, Progress, Transcript};
use tokio::sync::mpsc::UnboundedSender;

use crate::metrics::Metrics;
use crate::models::Models;

/// A recording waiting for the model, and where its news go.
pub struct Job {
    pub model: usize,
    pub options: DecodeOptions,
    /// 16 kHz mono.
    pub samples: Vec<f32>,
    pub events: UnboundedSender<JobEvent>,
}

impl Job {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }

    fn abandoned(&self) -> bool {
        self.events.is_closed()
    }
}

/// What happens to a job, in order: its place in the queue (again as it
/// moves up), progress while transcribed, then its result.
#[derive(Debug)]
pub enum JobEvent {
    Queued { ahead: usize },
    Progress(Progress),
    Done(Box<Result<Transcript, PipelineError>>),
}

/// How much the queue holds at most.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub jobs: usize,
    pub audio_seconds: f64,
}

/// The queue refused a job; try again after `retry_after`.
#[derive(Debug)]
pub struct QueueFull {
    pub retry_after: Duration,
}

pub struct Scheduler {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// What the worker waits on for jobs.
    wake: Condvar,
    limits: QueueLimits,
    models: Arc<Models>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Seconds of audio in `jobs`.
    audio: f64,
    /// Seconds of audio the worker is transcribing.
    running_audio: f64,
    closing: bool,
}

impl Scheduler {
    /// Starts the worker thread that transcribes with `models` (loaded
    /// inside [`mlx::evaluating_created`], as [`asr_pipeline::Pipeline`]s
    /// are, so that any thread can use them).
    pub fn start(models: Arc<Models>, limits: QueueLimits, metrics: Arc<Metrics>) -> Scheduler {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            limits,
            models,
            metrics,
        });
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("transcriber".into())
                .spawn(move || shared.work())
                .expect("a thread can be started")
        };
        Scheduler {
            shared,
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Queues `job`, or refuses it when the queue is full (or closing).
    pub fn submit(&self, job: Job) -> Result<(), QueueFull> {
        let mut queue = self.shared.lock();
        queue.drop_abandoned(&self.shared.metrics);
        let seconds = job.seconds();
        let full = queue.jobs.len() >= self.shared.limits.jobs
            || queue.audio + seconds > self.shared.limits.audio_seconds;
        if full || queue.closing {
            return Err(QueueFull {
                retry_after: self.shared.retry_after(&queue),
            });
        }
        let _ = job.events.send(JobEvent::Queued {
            ahead: queue.jobs.len(),
        });
        queue.audio += seconds;
        queue.jobs.push_back(job);
        self.shared.metrics.queued.set(queue.jobs.len() as i64);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Jobs waiting (those abandoned are dropped first).
    pub fn queued(&self) -> usize {
        let mut queue = self.shared.lock();
        queue.drop_abandoned(&self.shared.metrics);
        queue.jobs.len()
    }

    /// Lets the worker finish what is queued, then stops it.
    pub fn shutdown(&self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(worker) = worker {
            let _ = worker.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When the queue will likely have room: the audio ahead at the last
    /// batch's pace (a second at the least).
    fn retry_after(&self, queue: &Queue) -> Duration {
        let rtf = self.metrics.last_real_time_factor().unwrap_or(0.25);
        let seconds = ((queue.audio + queue.running_audio) * rtf).ceil();
        Duration::from_secs_f64(seconds.clamp(1.0, 3600.0))
    }

    fn work(&self) {
        while let Some(batch) = self.next_batch() {
            self.transcribe(batch);
            self.lock().running_audio = 0.0;
            self.metrics.running.set(0);
        }
    }

    /// The oldest job and those queued for the same model with the same
    /// settings, up to the batch size; `None` once closing with nothing
    /// left.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut queue = self.lock();
        loop {
            queue.drop_abandoned(&self.metrics);
            if let Some(first) = queue.jobs.pop_front() {
                let room = first.options.batch_size.max(1) - 1;
                let mut batch = vec![first];
                let mut i = 0;
                while i < queue.jobs.len() && batch.len() <= room {
                    let job = &queue.jobs[i];
                    if job.model == batch[0].model && job.options == batch[0].options {
                        batch.extend(queue.jobs.remove(i));
                    } else {
                        i += 1;
                    }
                }
                let seconds: f64 = batch.iter().map(Job::seconds).sum();
                queue.audio = (queue.audio - seconds).max(0.0);
                queue.running_audio = seconds;
                for (ahead, job) in queue.jobs.iter().enumerate() {
                    let _ = job.events.send(JobEvent::Queued { ahead });
                }
                self.metrics.queued.set(queue.jobs.len() as i64);
                self.metrics.running.set(batch.len() as i64);
                return Some(batch);
            }
            if queue.closing {
                return None;
            }
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn transcribe(&self, batch: Vec<Job>) {
        let model = self.models.get(batch[0].model);
        let audio: f64 = batch.iter().map(Job::seconds).sum();
        let _span =
            tracing::info_span!("batch", model = %model.id, requests = batch.len()).entered();
        let started = Instant::now();
        let recordings: Vec<Recording> = batch
            .iter()
            .map(|j| Recording::Samples(&j.samples))
            .collect();
        let results = model
            .pipeline
            .transcribe_many(&recordings, &batch[0].options, &|i, p| {
                let _ = batch[i].events.send(JobEvent::Progress(p));
            });
        let busy = started.elapsed().as_secs_f64();
        tracing::info!(audio, busy, "transcribed");
        self.metrics.batch_done(batch.len(), audio, busy);
        for (job, result) in batch.iter().zip(results) {
            let _ = job.events.send(JobEvent::Done(Box::new(result)));
        }
    }
}

impl Queue {
    fn drop_abandoned(&mut self, metrics: &Metrics) {
        let before = self.jobs.len();
        self.jobs.retain(|j| !j.abandoned());
        let dropped = before - self.jobs.len();
        if dropped > 0 {
            self.audio = self.jobs.iter().map(Job::seconds).sum();
            metrics.abandoned.inc_by(dropped as u64);
            metrics.queued.set(self.jobs.len() as i64);
            tracing::info!(dropped, "requests left before their turn");
        }
    }
}
