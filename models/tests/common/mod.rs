//! What the parity tests share: reading reference arrays from the `.npz`
//! fixtures the scripts under `scripts/` write.

use std::path::Path;

/// The values of array `name` in `tests/fixtures/<file>` in row-major order,
/// as f64 whatever numpy stored (f32, f64 or i64).
#[allow(dead_code)]
pub fn npz_values(file: &str, name: &str) -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let open = || ndarray_npy::NpzReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    if let Ok(a) = open().by_name::<ndarray::OwnedRepr<f32>, ndarray::IxDyn>(name) {
        return a.iter().map(|&v| f64::from(v)).collect();
    }
    if let Ok(a) = open().by_name::<ndarray::OwnedRepr<f64>, ndarray::IxDyn>(name) {
        return a.iter().copied().collect();
    }
    let a: ndarray::ArrayD<i64> = open().by_name(name).unwrap();
    a.iter().map(|&v| v as f64).collect()
}

/// The f32 array `name` of the `.npz` at `path` and its shape (for
/// fixtures made on demand outside the repository).
#[allow(dead_code)]
pub fn npz_at(path: &Path, name: &str) -> (Vec<f32>, Vec<i32>) {
    let file = std::fs::File::open(path).unwrap();
    let a: ndarray::ArrayD<f32> = ndarray_npy::NpzReader::new(file)
        .unwrap()
        .by_name(name)
        .unwrap();
    let shape = a.shape().iter().map(|&d| d as i32).collect();
    (a.iter().copied().collect(), shape)
}

/// The samples of ../shared/data/audio/jfk.wav, or `None` (said on stderr)
/// where the shared data is absent.
#[allow(dead_code)]
pub fn jfk() -> Option<Vec<f32>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/audio/jfk.wav");
    if !path.exists() {
        eprintln!("skipped: ../shared/data/audio/jfk.wav not present");
        return None;
    }
    Some(read_wav(&path))
}

/// The samples of a 16 kHz mono 16-bit WAV file, scaled to [-1, 1).
#[allow(dead_code)]
pub fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (16000, 1, 16),
        "{}: not 16 kHz mono 16-bit",
        path.display()
    );
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

/// One `.npz` fixture under `tests/fixtures/` and the largest difference
/// its float arrays allow.
#[allow(dead_code)]
pub struct Fixture {
    pub npz: &'static str,
    pub tolerance: f32,
}

#[allow(dead_code)]
impl Fixture {
    /// Integer array `name` (token ids).
    pub fn ids(&self, name: &str) -> Vec<i32> {
        npz_values(self.npz, name)
            .iter()
            .map(|&v| v as i32)
            .collect()
    }

    /// Array `name` as f32.
    pub fn floats(&self, name: &str) -> Vec<f32> {
        npz_values(self.npz, name)
            .iter()
            .map(|&v| v as f32)
            .collect()
    }

    /// Asserts that `ours` is within the tolerance of `reference`.
    pub fn check(&self, ours: &[f32], reference: &[f32], what: &str) {
        assert_close(ours, reference, self.tolerance, what);
    }
}

/// An array's values, evaluated.
#[allow(dead_code)]
pub fn values(a: &mlx::Array) -> Vec<f32> {
    a.eval().unwrap();
    a.to_vec::<f32>().unwrap()
}

/// Asserts that `ours` and `reference` differ by at most `tolerance`
/// anywhere.
#[allow(dead_code)]
pub fn assert_close(ours: &[f32], reference: &[f32], tolerance: f32, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= tolerance,
        "{what}: max |diff| {worst} > {tolerance}"
    );
}
