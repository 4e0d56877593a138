//! Driving a [`Stream`] from a live source, and replaying a recording as
//! if it were one, with what it takes to judge a stream: when each final
//! word came out against when it was said, how soon the first text showed,
//! and the computation per second of audio.

use std::time::Instant;

use super::source::LIVE_BLOCK_SAMPLES;
use super::{EventKind, Stream, StreamEvent, RATE};
use crate::PipelineError;

/// An event and when it was emitted: seconds after the stream started
/// (the moment its first audio was spoken).
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    pub event: StreamEvent,
    pub at: f64,
}

/// Everything a stream emitted, with its timing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    pub events: Vec<Emitted>,
    /// Seconds of audio streamed.
    pub audio_seconds: f64,
    /// Seconds spent in the stream (pushing and finishing).
    pub compute_seconds: f64,
}

impl Replay {
    /// The final events, in order.
    pub fn finals(&self) -> impl Iterator<Item = &Emitted> {
        self.events
            .iter()
            .filter(|e| e.event.kind == EventKind::Final)
    }

    /// The final text, events joined by spaces.
    pub fn final_text(&self) -> String {
        let texts: Vec<&str> = self.finals().map(|e| e.event.text.as_str()).collect();
        texts.join(" ")
    }

    /// For each final word with a time of its own: seconds from its end in
    /// the audio to its emission.
    pub fn confirmed_word_latencies(&self) -> Vec<f64> {
        self.finals()
            .flat_map(|e| {
                let words = e.event.words.as_deref().unwrap_or_default();
                words.iter().map(move |w| e.at - w.end)
            })
            .collect()
    }

    /// Seconds from the start of the first text shown (partial or final)
    /// to its emission.
    pub fn first_text_latency(&self) -> Option<f64> {
        self.events
            .iter()
            .find(|e| !e.event.text.is_empty())
            .map(|e| e.at - e.event.start)
    }

    /// Computation per second of audio.
    pub fn real_time_factor(&self) -> f64 {
        self.compute_seconds / self.audio_seconds.max(f64::EPSILON)
    }
}

/// The value below which a fraction `q` of `values` lies (nearest rank).
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((q * last as f64).round() as usize).min(last)])
}

/// How a replay's clock runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The clock moves on by the time each push took: events are timed as
    /// a real-time run on this machine would time them (a slow machine
    /// makes fewer, longer steps), without waiting through the recording.
    Measured,
    /// Computation takes no time: every block is pushed as it is spoken,
    /// so hypotheses fall every step exactly and a replay gives the same
    /// events on every machine.
    Ideal,
}

/// Streams a recording (`blocks` of 16 kHz mono samples, of any size) as a
/// live source would deliver it, in blocks of [`LIVE_BLOCK_SAMPLES`] as
/// they are spoken: the loop takes every block spoken by `clock`'s now,
/// pushes it, and waits for the next block when there is none. The
/// recording is read as it is spoken, so memory stays bounded. [`drive`]
/// is the same loop at real time.
pub fn replay<E>(
    stream: &mut Stream,
    blocks: impl IntoIterator<Item = Result<Vec<f32>, E>>,
    clock_runs: Clock,
    mut on_event: impl FnMut(&Emitted),
) -> Result<Replay, E>
where
    E: From<PipelineError>,
{
    let block = LIVE_BLOCK_SAMPLES;
    let mut recording = Ahead {
        blocks: blocks.into_iter(),
        samples: Vec::new(),
        taken: 0,
        ended: false,
    };
    let mut replay = Replay::default();
    let mut clock = 0.0f64;
    loop {
        let spoken = (clock * RATE).round() as usize / block * block;
        let audio = recording.take_until(spoken)?;
        if audio.is_empty() {
            if recording.ended && recording.samples.is_empty() {
                break;
            }
            // Idle until the next block is spoken (or the last, shorter one).
            clock = ((recording.taken / block + 1) * block) as f64 / RATE;
            continue;
        }
        let started = Instant::now();
        let events = stream.push(&audio)?;
        let took = started.elapsed().as_secs_f64();
        if clock_runs == Clock::Measured {
            clock += took;
        }
        replay.compute_seconds += took;
        record(&mut replay, events, clock, &mut on_event);
    }
    replay.audio_seconds = recording.taken as f64 / RATE;
    let started = Instant::now();
    let events = stream.finish()?;
    let took = started.elapsed().as_secs_f64();
    replay.compute_seconds += took;
    let at = clock.max(replay.audio_seconds)
        + match clock_runs {
            Clock::Measured => took,
            Clock::Ideal => 0.0,
        };
    record(&mut replay, events, at, &mut on_event);
    Ok(replay)
}

/// A recording read as far as it has been spoken.
struct Ahead<I> {
    blocks: I,
    /// Read, not yet taken.
    samples: Vec<f32>,
    /// Samples taken.
    taken: usize,
    ended: bool,
}

impl<I, E> Ahead<I>
where
    I: Iterator<Item = Result<Vec<f32>, E>>,
{
    /// The samples after those taken up to sample `upto` of the recording
    /// (fewer at its end), reading blocks as needed.
    fn take_until(&mut self, upto: usize) -> Result<Vec<f32>, E> {
        while !self.ended && self.taken + self.samples.len() < upto {
            match self.blocks.next() {
                Some(block) => self.samples.extend(block?),
                None => self.ended = true,
            }
        }
        let n = upto.saturating_sub(self.taken).min(self.samples.len());
        self.taken += n;
        Ok(self.samples.drain(..n).collect())
    }
}

/// Feeds `stream` from a live source until it ends (`next` returns
/// `Ok(None)`: end of input, or stopped), then finishes it. `next` blocks
/// until audio is there and returns all of it; events are timed by the
/// wall clock from the first call.
pub fn drive<E>(
    stream: &mut Stream,
    mut next: impl FnMut() -> Result<Option<Vec<f32>>, E>,
    mut on_event: impl FnMut(&Emitted),
) -> Result<Replay, E>
where
    E: From<PipelineError>,
{
    let begun = Instant::now();
    let mut replay = Replay::default();
    let mut samples = 0usize;
    while let Some(audio) = next()? {
        samples += audio.len();
        let started = Instant::now();
        let events = stream.push(&audio)?;
        replay.compute_seconds += started.elapsed().as_secs_f64();
        record(
            &mut replay,
            events,
            begun.elapsed().as_secs_f64(),
            &mut on_event,
        );
    }
    let started = Instant::now();
    let events = stream.finish()?;
    replay.compute_seconds += started.elapsed().as_secs_f64();
    replay.audio_seconds = samples as f64 / RATE;
    record(
        &mut replay,
        events,
        begun.elapsed().as_secs_f64(),
        &mut on_event,
    );
    Ok(replay)
}

fn record(
    replay: &mut Replay,
    events: Vec<StreamEvent>,
    at: f64,
    on_event: &mut impl FnMut(&Emitted),
) {
    for event in events {
        let emitted = Emitted { event, at };
        on_event(&emitted);
        replay.events.push(emitted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&values, 0.5), Some(3.0));
        assert_eq!(quantile(&values, 0.9), Some(5.0));
        assert_eq!(quantile(&values, 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
