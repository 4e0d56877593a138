//! The sliding chunks a segmentation model sees, cut from a block stream
//! in bounded memory, and the frame grid their outputs share.

/// Where a segmentation model's output frames lie, in samples at 16 kHz.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameGrid {
    /// Samples per chunk the model takes.
    pub chunk: usize,
    /// Output frames per chunk.
    pub frames: usize,
    /// Samples between consecutive frames.
    pub step: usize,
    /// Where the first frame's receptive field is centred.
    pub first_center: f64,
}

impl FrameGrid {
    /// The sample at the centre of frame `frame` of the recording's grid
    /// (chunks start on multiples of `step`, so all chunks share one grid).
    pub fn center(&self, frame: usize) -> f64 {
        (frame * self.step) as f64 + self.first_center
    }

    /// The samples frame `frame` of a chunk stands for: the `step` around
    /// its centre, clamped to the chunk.
    pub fn span_in_chunk(&self, frame: usize) -> (usize, usize) {
        let center = self.center(frame);
        let start = (center - self.step as f64 / 2.0).max(0.0) as usize;
        (start.min(self.chunk), (start + self.step).min(self.chunk))
    }
}

/// Chunks of `grid.chunk` samples every `step_frames` frames, cut from
/// blocks as they arrive. The last chunk is zero-padded so that the end
/// of the recording is covered; a recording shorter than one chunk is one
/// padded chunk. Holds one chunk of audio plus one block.
pub struct Chunker {
    grid: FrameGrid,
    hop: usize,
    /// Samples from `buffer_start` on.
    buffer: Vec<f32>,
    buffer_start: usize,
    next_start: usize,
    seen: usize,
}

/// One chunk of audio and where it starts.
pub struct Chunk {
    pub start: usize,
    pub samples: Vec<f32>,
}

impl Chunker {
    pub fn new(grid: FrameGrid, step_frames: usize) -> Chunker {
        Chunker {
            grid,
            hop: (step_frames.max(1) * grid.step).min(grid.chunk),
            buffer: Vec::new(),
            buffer_start: 0,
            next_start: 0,
            seen: 0,
        }
    }

    /// Samples between chunk starts.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> usize {
        self.seen
    }

    /// The chunks that `block` completes.
    pub fn push(&mut self, block: &[f32]) -> Vec<Chunk> {
        self.buffer.extend_from_slice(block);
        self.seen += block.len();
        let mut out = Vec::new();
        while self.next_start + self.grid.chunk <= self.seen {
            out.push(self.take(self.grid.chunk));
        }
        self.drop_consumed();
        out
    }

    /// The last, padded chunk, unless the chunks so far cover every sample.
    pub fn finish(&mut self) -> Option<Chunk> {
        let covered =
            self.next_start > 0 && self.next_start - self.hop + self.grid.chunk >= self.seen;
        if covered || self.seen == 0 {
            return None;
        }
        let available = self.seen - self.next_start;
        let mut chunk = self.take(available);
        chunk.samples.resize(self.grid.chunk, 0.0);
        Some(chunk)
    }

    fn take(&mut self, len: usize) -> Chunk {
        let from = self.next_start - self.buffer_start;
        let chunk = Chunk {
            start: self.next_start,
            samples: self.buffer[from..from + len].to_vec(),
        };
        self.next_start += self.hop;
        chunk
    }

    fn drop_consumed(&mut self) {
        let keep_from = self.next_start.min(self.seen);
        let drop = keep_from - self.buffer_start;
        self.buffer.drain(..drop);
        self.buffer_start = keep_from;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: FrameGrid = FrameGrid {
        chunk: 100,
        frames: 10,
        step: 10,
        first_center: 5.0,
    };

    fn chunks(total: usize, block: usize, step_frames: usize) -> Vec<(usize, Vec<f32>)> {
        let samples: Vec<f32> = (0..total).map(|i| i as f32 + 1.0).collect();
        let mut chunker = Chunker::new(GRID, step_frames);
        let mut out = Vec::new();
        for b in samples.chunks(block) {
            out.extend(chunker.push(b));
        }
        out.extend(chunker.finish());
        out.into_iter().map(|c| (c.start, c.samples)).collect()
    }

    #[test]
    fn chunks_slide_by_the_hop_and_the_last_is_padded() {
        let all = chunks(260, 7, 5);
        let starts: Vec<usize> = all.iter().map(|c| c.0).collect();
        assert_eq!(starts, [0, 50, 100, 150, 200]);
        for (start, samples) in &all {
            assert_eq!(samples.len(), 100);
            for (i, x) in samples.iter().enumerate() {
                let expected = if start + i < 260 {
                    (start + i + 1) as f32
                } else {
                    0.0
                };
                assert_eq!(*x, expected);
            }
        }
        // Block sizes do not matter.
        assert_eq!(chunks(260, 1000, 5), all);
        assert_eq!(chunks(260, 1, 5), all);
    }

    #[test]
    fn exact_fits_add_no_chunk_and_short_recordings_make_one() {
        let starts = |total| chunks(total, 13, 5).iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(starts(200), [0, 50, 100]);
        assert_eq!(starts(250), [0, 50, 100, 150]);
        assert_eq!(starts(30), [0]);
        assert!(starts(0).is_empty());
    }
}
