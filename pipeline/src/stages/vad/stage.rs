//! A detector's classifier and region rules over audio that arrives in
//! blocks.

use super::{detector, FrameClassifier, RegionRules, SpeechRegion, VadError, VadOptions};

/// Voice activity detection over audio that arrives in blocks.
///
/// [`Self::push`] any number of blocks, then [`Self::finish`]; each call
/// returns the regions that became final, in order. The regions, put
/// together, are exactly [`super::detect_speech`]'s on the whole recording:
/// the whole frames of each push are classified together (one batch for a
/// neural detector), in order, and the rules see them one by one.
pub struct VadStage {
    classifier: Box<dyn FrameClassifier>,
    rules: Box<dyn RegionRules>,
    frame_len: usize,
    /// Samples after the last whole frame.
    partial: Vec<f32>,
    /// Samples pushed.
    samples: usize,
    finished: bool,
}

impl VadStage {
    /// A stage with the detector `opts.model` names, as `opts` configures it.
    pub fn new(opts: &VadOptions) -> Result<Self, VadError> {
        opts.check()?;
        detector(opts)?.stage(opts)
    }

    /// A stage deciding frames with `classifier` and turning its decisions
    /// into regions with `rules`.
    pub fn with_parts(
        classifier: Box<dyn FrameClassifier>,
        rules: Box<dyn RegionRules>,
    ) -> Result<Self, VadError> {
        let frame_len = classifier.frame_len();
        if frame_len == 0 {
            return Err(VadError::Detector("frame length 0".into()));
        }
        Ok(VadStage {
            classifier,
            rules,
            frame_len,
            partial: Vec::with_capacity(frame_len),
            samples: 0,
            finished: false,
        })
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> usize {
        self.samples
    }

    /// Context added on each side of a region, in samples.
    pub fn pad(&self) -> usize {
        self.rules.pad()
    }

    /// Every sample before this index is either in a region already
    /// returned or in none that will be: a caller gathering speech may drop
    /// them.
    pub fn retain_from(&self) -> usize {
        self.rules.retain_from().min(self.samples)
    }

    /// Runs the detector over the next `block` of samples; returns the
    /// regions that became final.
    pub fn push(&mut self, block: &[f32]) -> Result<Vec<SpeechRegion>, VadError> {
        if self.finished {
            return Err(VadError::Finished);
        }
        self.samples += block.len();
        let mut out = Vec::new();
        let f = self.frame_len;
        let mut rest = block;
        if !self.partial.is_empty() {
            let take = (f - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() < f {
                return Ok(out);
            }
            let frame = std::mem::take(&mut self.partial);
            self.frames(&frame, &mut out)?;
            self.partial = frame;
            self.partial.clear();
        }
        let whole = rest.len() / f * f;
        self.frames(&rest[..whole], &mut out)?;
        self.partial.extend_from_slice(&rest[whole..]);
        Ok(out)
    }

    /// Ends the stream; returns the remaining regions.
    pub fn finish(&mut self) -> Result<Vec<SpeechRegion>, VadError> {
        let mut out = Vec::new();
        if self.finished {
            return Ok(out);
        }
        self.finished = true;
        if let Some(p) = self.classifier.classify_rest(&self.partial)? {
            self.rules.frame(&self.partial, p, &mut out);
        }
        self.partial.clear();
        self.rules.finish(self.samples, &mut out);
        Ok(out)
    }

    fn frames(&mut self, frames: &[f32], out: &mut Vec<SpeechRegion>) -> Result<(), VadError> {
        if frames.is_empty() {
            return Ok(());
        }
        let probabilities = self.classifier.classify(frames)?;
        if probabilities.len() != frames.len() / self.frame_len {
            return Err(VadError::Detector(format!(
                "{} probabilities for {} frames",
                probabilities.len(),
                frames.len() / self.frame_len
            )));
        }
        for (frame, p) in frames.chunks_exact(self.frame_len).zip(probabilities) {
            self.rules.frame(frame, p, out);
        }
        Ok(())
    }
}
