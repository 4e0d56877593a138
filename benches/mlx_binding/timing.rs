//! How a benchmark takes its time.

use std::time::Instant;

/// Median seconds of `reps` calls of `f` after one warm-up call.
pub fn median_secs(reps: usize, mut f: impl FnMut() -> mlx::Result<()>) -> mlx::Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
