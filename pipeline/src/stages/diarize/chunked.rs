//! Diarization in the structure of pyannote's pipeline, with our own code:
//!
//! 1. a segmentation model says, for every frame of 5 s chunks taken every
//!    `step_s`, how likely each of a few *local* speakers is talking;
//! 2. each (chunk, local speaker) that talks long enough gets a speaker
//!    embedding of the audio where it talks alone (where it talks at all
//!    when that is too short);
//! 3. the embeddings are clustered into the recording's speakers
//!    ([`super::clustering`]), and within a chunk two local speakers never
//!    map to the same speaker;
//! 4. reconstruction: for every frame of the recording, the number of
//!    simultaneous speakers is the chunks' average count of active local
//!    speakers, rounded, and that many speakers are chosen, those with the
//!    highest summed activity over the chunks covering the frame. Their
//!    runs of frames are the speaker turns.
//!
//! The audio arrives as blocks and is held one chunk at a time; what is
//! kept per chunk is its frame activity and embeddings (a few kB), so an
//! hour's recording diarizes in a few tens of MB.

use std::sync::Mutex;
use std::time::Instant;

use super::chunks::{Chunk, Chunker, FrameGrid};
use super::clustering::{centroids, cluster, dot, ClusterCount};
use super::{DiarizationOptions, Diarizer};
use crate::stages::audio::{Recording, SAMPLE_RATE};
use crate::stages::StageError;
use crate::transcript::{Progress, SpeakerTurn};

/// A segmentation model and a speaker encoder diarizing as this module
/// says. Recordings take turns on the models (MLX arrays are not `Sync`).
pub struct ChunkedDiarizer {
    models: Mutex<Models>,
    settings: ChunkedSettings,
    description: String,
}

struct Models {
    segmenter: Box<dyn LocalSegmenter + Send>,
    embedder: Box<dyn SpeakerEmbedder + Send>,
}

impl ChunkedDiarizer {
    /// `description` is what [`Diarizer::name`] reports.
    pub fn new(
        segmenter: Box<dyn LocalSegmenter + Send>,
        embedder: Box<dyn SpeakerEmbedder + Send>,
        settings: ChunkedSettings,
        description: String,
    ) -> ChunkedDiarizer {
        ChunkedDiarizer {
            models: Mutex::new(Models {
                segmenter,
                embedder,
            }),
            settings,
            description,
        }
    }
}

impl ChunkedSettings {
    /// The settings `opts` give for a model whose frames are `grid`.
    pub fn new(opts: &DiarizationOptions, grid: &FrameGrid) -> ChunkedSettings {
        let step_samples = opts.step_s * f64::from(SAMPLE_RATE);
        let step_frames = (step_samples / grid.step as f64).round().max(1.0) as usize;
        // How many chunks see any one instant: each second of speech is
        // embedded that many times.
        let chunks_per_instant = grid.chunk as f32 / (step_frames * grid.step) as f32;
        ChunkedSettings {
            step_frames,
            onset: opts.onset,
            // Resemblyzer's shortest partial is 1.6 s; below a third of it
            // an embedding says little about the speaker.
            min_embedding_samples: SAMPLE_RATE as usize / 2,
            count: ClusterCount {
                threshold: opts.threshold,
                exactly: opts.num_speakers,
                at_least: opts.min_speakers,
                at_most: opts.max_speakers,
                min_weight: MIN_SPEAKER_SECONDS * chunks_per_instant,
            },
            batch: 32,
        }
    }
}

impl Diarizer for ChunkedDiarizer {
    fn name(&self) -> &str {
        &self.description
    }

    fn diarize(
        &self,
        recording: Recording<'_>,
        progress: &dyn Fn(Progress),
    ) -> Result<Vec<SpeakerTurn>, StageError> {
        let blocks = recording
            .blocks()
            .map_err(|e| StageError::audio(&self.description, e))?;
        // A recording that panicked mid-way left the models as they were.
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        diarize_blocks(
            &*models.segmenter,
            &*models.embedder,
            &self.settings,
            blocks,
            &|done| progress(Progress { done, total: None }),
        )
    }
}

/// Local speaker activity of chunks: a segmentation model.
pub trait LocalSegmenter {
    fn grid(&self) -> FrameGrid;
    /// Local speakers per chunk.
    fn speakers(&self) -> usize;
    /// Activity probabilities of each chunk (`grid().chunk` samples each),
    /// `[chunks, frames, speakers]` flattened.
    fn segment(&self, chunks: &[&[f32]]) -> Result<Vec<f32>, StageError>;
}

/// Speaker embeddings of utterances: a speaker-encoder model.
pub trait SpeakerEmbedder {
    fn dims(&self) -> usize;
    /// One embedding per utterance, `[utterances, dims]` flattened.
    fn embed(&self, utterances: &[&[f32]]) -> Result<Vec<f32>, StageError>;
}

/// The settings of the chunked diarizer.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkedSettings {
    /// Frames between chunk starts.
    pub step_frames: usize,
    /// A local speaker is active where its probability exceeds this.
    pub onset: f32,
    /// A (chunk, speaker) needs this many samples of activity for an embedding.
    pub min_embedding_samples: usize,
    pub count: ClusterCount,
    /// Chunks segmented per model call.
    pub batch: usize,
}

/// Speech a speaker needs in all: less is taken for stray embeddings.
const MIN_SPEAKER_SECONDS: f32 = 3.0;

/// What is kept of one segmented chunk.
struct ChunkActivity {
    first_frame: usize,
    /// `[frames, speakers]`: the probability where active, else 0.
    activity: Vec<f32>,
    /// Row in the embedding table of each local speaker that has one.
    embedding: Vec<Option<usize>>,
}

/// Diarizes a block stream; `progress` hears the seconds read so far.
pub fn diarize_blocks<E>(
    segmenter: &dyn LocalSegmenter,
    embedder: &dyn SpeakerEmbedder,
    settings: &ChunkedSettings,
    blocks: impl Iterator<Item = Result<Vec<f32>, E>>,
    progress: &dyn Fn(f64),
) -> Result<Vec<SpeakerTurn>, StageError>
where
    E: std::fmt::Display,
{
    let grid = segmenter.grid();
    let mut chunker = Chunker::new(grid, settings.step_frames);
    let mut state = Collected::default();
    let mut pending: Vec<Chunk> = Vec::new();
    for block in blocks {
        let block = block.map_err(|e| StageError {
            stage: "diarize".into(),
            message: e.to_string(),
        })?;
        pending.extend(chunker.push(&block));
        if pending.len() >= settings.batch {
            state.add(segmenter, embedder, settings, &std::mem::take(&mut pending))?;
            progress(chunker.samples_seen() as f64 / f64::from(SAMPLE_RATE));
        }
    }
    pending.extend(chunker.finish());
    state.add(segmenter, embedder, settings, &pending)?;
    progress(chunker.samples_seen() as f64 / f64::from(SAMPLE_RATE));
    let clock = Instant::now();
    let turns = state.turns(grid, segmenter.speakers(), embedder.dims(), settings);
    tracing::info!(
        chunks = state.chunks.len(),
        embeddings = state.embeddings.len() / embedder.dims().max(1),
        segmentation_s = state.segmenting,
        embedding_s = state.embedding,
        clustering_s = clock.elapsed().as_secs_f64(),
        "diarization stages"
    );
    Ok(turns)
}

#[derive(Default)]
struct Collected {
    chunks: Vec<ChunkActivity>,
    embeddings: Vec<f32>,
    /// Seconds of audio behind each embedding.
    weights: Vec<f32>,
    /// Seconds spent in the segmentation and embedding models.
    segmenting: f64,
    embedding: f64,
}

impl Collected {
    fn add(
        &mut self,
        segmenter: &dyn LocalSegmenter,
        embedder: &dyn SpeakerEmbedder,
        settings: &ChunkedSettings,
        chunks: &[Chunk],
    ) -> Result<(), StageError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let grid = segmenter.grid();
        let speakers = segmenter.speakers();
        let inputs: Vec<&[f32]> = chunks.iter().map(|c| c.samples.as_slice()).collect();
        let clock = Instant::now();
        let probabilities = segmenter.segment(&inputs)?;
        self.segmenting += clock.elapsed().as_secs_f64();
        let per_chunk = grid.frames * speakers;
        let mut utterances: Vec<Vec<f32>> = Vec::new();
        let mut owners = Vec::new();
        for (c, chunk) in chunks.iter().enumerate() {
            let probs = &probabilities[c * per_chunk..(c + 1) * per_chunk];
            let activity: Vec<f32> = probs
                .iter()
                .map(|&p| if p > settings.onset { p } else { 0.0 })
                .collect();
            for s in 0..speakers {
                if let Some(audio) =
                    speaker_audio(&grid, &chunk.samples, &activity, speakers, s, settings)
                {
                    utterances.push(audio);
                    owners.push((self.chunks.len(), s));
                }
            }
            self.chunks.push(ChunkActivity {
                first_frame: chunk.start / grid.step,
                activity,
                embedding: vec![None; speakers],
            });
        }
        if utterances.is_empty() {
            return Ok(());
        }
        let refs: Vec<&[f32]> = utterances.iter().map(Vec::as_slice).collect();
        let rows = self.embeddings.len() / embedder.dims();
        let clock = Instant::now();
        self.embeddings.extend(embedder.embed(&refs)?);
        self.weights
            .extend(refs.iter().map(|u| u.len() as f32 / SAMPLE_RATE as f32));
        self.embedding += clock.elapsed().as_secs_f64();
        for (i, (chunk, s)) in owners.into_iter().enumerate() {
            self.chunks[chunk].embedding[s] = Some(rows + i);
        }
        Ok(())
    }

    fn turns(
        &self,
        grid: FrameGrid,
        speakers: usize,
        dims: usize,
        settings: &ChunkedSettings,
    ) -> Vec<SpeakerTurn> {
        let labels = cluster(&self.embeddings, &self.weights, dims, &settings.count);
        let Some(clusters) = labels.iter().max().map(|m| m + 1) else {
            return Vec::new();
        };
        let rows: Vec<&[f32]> = self.embeddings.chunks(dims).collect();
        let centres = centroids(&rows, &labels);
        let total_frames = self
            .chunks
            .last()
            .map_or(0, |c| c.first_frame + grid.frames);
        let mut active_sum = vec![0.0f32; total_frames];
        let mut covering = vec![0u32; total_frames];
        let mut score = vec![vec![0.0f32; total_frames]; clusters];
        for chunk in &self.chunks {
            let mapped = assign_distinct(chunk, &rows, &centres);
            for (f, row) in chunk.activity.chunks(speakers).enumerate() {
                let g = chunk.first_frame + f;
                covering[g] += 1;
                for (&a, speaker) in row.iter().zip(&mapped) {
                    if a > 0.0 {
                        active_sum[g] += 1.0;
                        if let Some(k) = *speaker {
                            score[k][g] += a;
                        }
                    }
                }
            }
        }
        let mut selected = vec![vec![false; total_frames]; clusters];
        let mut order: Vec<usize> = (0..clusters).collect();
        for g in 0..total_frames {
            let count = (active_sum[g] / covering[g].max(1) as f32).round_ties_even() as usize;
            order.sort_by(|&a, &b| score[b][g].total_cmp(&score[a][g]));
            for &k in order.iter().take(count) {
                if score[k][g] > 0.0 {
                    selected[k][g] = true;
                }
            }
        }
        turns_of(&selected, &grid)
    }
}

/// The samples of `chunk` where local speaker `s` talks alone, or where it
/// talks at all when that is too short; `None` below the minimum.
fn speaker_audio(
    grid: &FrameGrid,
    chunk: &[f32],
    activity: &[f32],
    speakers: usize,
    s: usize,
    settings: &ChunkedSettings,
) -> Option<Vec<f32>> {
    let frames = |alone: bool| -> Vec<usize> {
        (0..grid.frames)
            .filter(|&f| {
                let row = &activity[f * speakers..(f + 1) * speakers];
                row[s] > 0.0 && (!alone || row.iter().filter(|&&a| a > 0.0).count() == 1)
            })
            .collect()
    };
    let enough = |frames: &[usize]| frames.len() * grid.step >= settings.min_embedding_samples;
    let alone = frames(true);
    let chosen = if enough(&alone) { alone } else { frames(false) };
    if !enough(&chosen) {
        return None;
    }
    let mut audio = Vec::with_capacity(chosen.len() * grid.step);
    for f in chosen {
        let (start, end) = grid.span_in_chunk(f);
        audio.extend_from_slice(&chunk[start..end]);
    }
    Some(audio)
}

/// The speaker of each local speaker of `chunk` that has an embedding:
/// the most similar centroids, distinct within the chunk (all one-to-one
/// assignments of the few local speakers are tried).
fn assign_distinct(
    chunk: &ChunkActivity,
    rows: &[&[f32]],
    centres: &[Vec<f32>],
) -> Vec<Option<usize>> {
    let locals: Vec<(usize, &[f32])> = chunk
        .embedding
        .iter()
        .enumerate()
        .filter_map(|(s, row)| row.map(|r| (s, rows[r])))
        .collect();
    let similarity: Vec<Vec<f32>> = locals
        .iter()
        .map(|(_, e)| centres.iter().map(|c| dot(c, e)).collect())
        .collect();
    let mut best: (f32, Vec<Option<usize>>) = (f32::NEG_INFINITY, Vec::new());
    let mut choice = vec![None; locals.len()];
    search(&similarity, centres.len(), 0, 0.0, &mut choice, &mut best);
    let mut mapped = vec![None; chunk.embedding.len()];
    for ((s, _), k) in locals.iter().zip(best.1) {
        mapped[*s] = k;
    }
    mapped
}

/// Depth-first search over distinct cluster choices for locals `i..`,
/// keeping the best total similarity; a local left without a cluster
/// (more locals than clusters) counts nothing.
fn search(
    similarity: &[Vec<f32>],
    clusters: usize,
    i: usize,
    total: f32,
    choice: &mut Vec<Option<usize>>,
    best: &mut (f32, Vec<Option<usize>>),
) {
    if i == similarity.len() {
        if total > best.0 {
            *best = (total, choice.clone());
        }
        return;
    }
    let spare = clusters.saturating_sub(choice[..i].iter().flatten().count());
    for k in 0..clusters {
        if choice[..i].contains(&Some(k)) {
            continue;
        }
        choice[i] = Some(k);
        search(
            similarity,
            clusters,
            i + 1,
            total + similarity[i][k],
            choice,
            best,
        );
    }
    if spare < similarity.len() - i {
        choice[i] = None;
        search(similarity, clusters, i + 1, total, choice, best);
    }
}

/// Runs of selected frames as turns, speakers named by first appearance.
fn turns_of(selected: &[Vec<bool>], grid: &FrameGrid) -> Vec<SpeakerTurn> {
    let seconds = |sample: f64| sample.max(0.0) / f64::from(SAMPLE_RATE);
    let mut raw: Vec<(f64, f64, usize)> = Vec::new();
    for (k, frames) in selected.iter().enumerate() {
        let mut start = None;
        for (g, &on) in frames.iter().chain(std::iter::once(&false)).enumerate() {
            match (on, start) {
                (true, None) => start = Some(g),
                (false, Some(s)) => {
                    let half = grid.step as f64 / 2.0;
                    raw.push((
                        seconds(grid.center(s) - half),
                        seconds(grid.center(g - 1) + half),
                        k,
                    ));
                    start = None;
                }
                _ => {}
            }
        }
    }
    raw.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut names: Vec<usize> = Vec::new();
    raw.into_iter()
        .map(|(start, end, k)| {
            let index = names.iter().position(|&n| n == k).unwrap_or_else(|| {
                names.push(k);
                names.len() - 1
            });
            SpeakerTurn {
                start,
                end,
                speaker: format!("SPEAKER_{index:02}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic recordings where speaker `k` is the constant sample value
    /// `(k + 1) / 10` (silence 0): the segmenter sees which values a frame
    /// holds, the embedder which value an utterance has most of.
    struct ValueSegmenter;

    const GRID: FrameGrid = FrameGrid {
        chunk: 16_000,
        frames: 100,
        step: 160,
        first_center: 80.0,
    };
    const SPEAKERS: usize = 4;

    fn speaker_of(x: f32) -> Option<usize> {
        let k = (x * 10.0).round() as usize;
        (x > 0.0).then(|| k - 1)
    }

    impl LocalSegmenter for ValueSegmenter {
        fn grid(&self) -> FrameGrid {
            GRID
        }
        fn speakers(&self) -> usize {
            3
        }
        /// Local speaker slots in order of first appearance in the chunk.
        fn segment(&self, chunks: &[&[f32]]) -> Result<Vec<f32>, StageError> {
            let mut out = Vec::new();
            for chunk in chunks {
                let mut slots: Vec<usize> = Vec::new();
                for f in 0..GRID.frames {
                    let frame = &chunk[f * GRID.step..(f + 1) * GRID.step];
                    let mut row = [0.0f32; 3];
                    for k in frame.iter().filter_map(|&x| speaker_of(x)) {
                        let slot = slots.iter().position(|&s| s == k).unwrap_or_else(|| {
                            slots.push(k);
                            slots.len() - 1
                        });
                        row[slot] = 0.9;
                    }
                    out.extend(row);
                }
            }
            Ok(out)
        }
    }

    struct ValueEmbedder;

    impl SpeakerEmbedder for ValueEmbedder {
        fn dims(&self) -> usize {
            SPEAKERS
        }
        fn embed(&self, utterances: &[&[f32]]) -> Result<Vec<f32>, StageError> {
            let mut out = Vec::new();
            for u in utterances {
                let mut counts = [0.0f32; SPEAKERS];
                for k in u.iter().filter_map(|&x| speaker_of(x)) {
                    counts[k] += 1.0;
                }
                out.extend(counts);
            }
            Ok(out)
        }
    }

    fn settings() -> ChunkedSettings {
        ChunkedSettings {
            step_frames: 25,
            onset: 0.5,
            min_embedding_samples: 1600,
            count: ClusterCount {
                threshold: 0.5,
                exactly: None,
                at_least: None,
                at_most: None,
                min_weight: 0.0,
            },
            batch: 3,
        }
    }

    /// `(seconds, speaker)` pieces, `None` for silence.
    fn recording(pieces: &[(f64, Option<usize>)]) -> Vec<f32> {
        let mut out = Vec::new();
        for &(seconds, speaker) in pieces {
            let value = speaker.map_or(0.0, |k| (k + 1) as f32 / 10.0);
            out.extend(std::iter::repeat_n(value, (seconds * 16_000.0) as usize));
        }
        out
    }

    fn diarize(samples: &[f32], settings: &ChunkedSettings) -> Vec<SpeakerTurn> {
        let blocks = samples.chunks(4000).map(|b| Ok::<_, String>(b.to_vec()));
        diarize_blocks(&ValueSegmenter, &ValueEmbedder, settings, blocks, &|_| {}).unwrap()
    }

    #[test]
    fn turns_follow_who_speaks_when_across_chunks() {
        let samples = recording(&[
            (0.5, None),
            (2.0, Some(0)),
            (1.5, Some(1)),
            (0.5, None),
            (2.0, Some(2)),
            (1.0, Some(0)),
        ]);
        let turns = diarize(&samples, &settings());
        let expected = [
            (0.5, 2.5, "SPEAKER_00"),
            (2.5, 4.0, "SPEAKER_01"),
            (4.5, 6.5, "SPEAKER_02"),
            (6.5, 7.5, "SPEAKER_00"),
        ];
        assert_eq!(turns.len(), expected.len(), "{turns:?}");
        for (turn, (start, end, name)) in turns.iter().zip(expected) {
            assert!((turn.start - start).abs() <= 0.011, "{turn:?}");
            assert!((turn.end - end).abs() <= 0.011, "{turn:?}");
            assert_eq!(turn.speaker, name);
        }
    }

    #[test]
    fn the_speaker_count_setting_merges_speakers() {
        let samples = recording(&[(2.0, Some(0)), (2.0, Some(1)), (2.0, Some(2))]);
        let mut two = settings();
        two.count.exactly = Some(2);
        let turns = diarize(&samples, &two);
        let names: std::collections::BTreeSet<_> = turns.iter().map(|t| &t.speaker).collect();
        assert_eq!(names.len(), 2, "{turns:?}");
    }

    #[test]
    fn silence_has_no_turns() {
        assert!(diarize(&recording(&[(3.0, None)]), &settings()).is_empty());
        assert!(diarize(&[], &settings()).is_empty());
    }

    #[test]
    fn local_speakers_of_one_chunk_take_distinct_speakers() {
        let chunk = ChunkActivity {
            first_frame: 0,
            activity: vec![],
            embedding: vec![Some(0), Some(1), None],
        };
        let a = [1.0f32, 0.0];
        let b = [0.9f32, 0.1];
        let rows: Vec<&[f32]> = vec![&a, &b];
        let centres = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        assert_eq!(
            assign_distinct(&chunk, &rows, &centres),
            [Some(0), Some(1), None]
        );
        let one = vec![vec![1.0, 0.0]];
        assert_eq!(assign_distinct(&chunk, &rows, &one), [Some(0), None, None]);
    }
}
