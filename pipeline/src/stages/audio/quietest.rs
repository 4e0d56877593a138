//! Where to cut audio between words: its quietest stretch.

use super::SAMPLE_RATE;

/// The span (samples: 100 ms) whose energy rates a cut point.
const ENERGY_WINDOW: usize = SAMPLE_RATE as usize / 10;

/// Where in `range` to end a segment of `samples`: the middle of the
/// [`ENERGY_WINDOW`] with the least energy (the first, on ties).
pub(crate) fn quietest_cut(samples: &[f32], range: std::ops::Range<usize>) -> usize {
    let half = ENERGY_WINDOW / 2;
    let mut prefix = Vec::with_capacity(samples.len() + 1);
    prefix.push(0f64);
    for &s in samples {
        prefix.push(prefix[prefix.len() - 1] + f64::from(s) * f64::from(s));
    }
    let energy = |at: usize| {
        let (lo, hi) = (at.saturating_sub(half), (at + half).min(samples.len()));
        prefix[hi] - prefix[lo]
    };
    range
        .min_by(|&a, &b| energy(a).total_cmp(&energy(b)))
        .expect("a non-empty search range")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: usize = SAMPLE_RATE as usize;

    #[test]
    fn cuts_fall_in_the_quietest_tenth_of_a_second() {
        let rate = SAMPLE_RATE as f32;
        let mut samples: Vec<f32> = (0..HZ * 10)
            .map(|i| (i as f32 / rate * 440.0 * std::f32::consts::TAU).sin() * 0.5)
            .collect();
        // A pause from 6.3 s to 6.6 s, another (quieter) at 3.0-3.2 s
        // outside the range searched.
        samples[HZ * 63 / 10..HZ * 66 / 10].fill(0.0);
        samples[HZ * 3..HZ * 32 / 10].fill(0.0);
        let cut = quietest_cut(&samples, HZ * 4..HZ * 9);
        let at = cut as f64 / SAMPLE_RATE as f64;
        assert!((6.35..=6.55).contains(&at), "{at}");
    }
}
