//! WAV files written byte by byte, for headers no WAV writer would write
//! (shared by the pipeline's and the CLI's tests).

use std::path::Path;

/// A 16-bit mono PCM WAV at `rate` (any rate, 0 included) of `frames`
/// silent frames.
pub fn write_raw_wav(path: &Path, rate: u32, frames: u32) {
    let data = frames * 2;
    let mut bytes = b"RIFF".to_vec();
    bytes.extend((36 + data).to_le_bytes());
    bytes.extend(b"WAVEfmt ");
    bytes.extend(16u32.to_le_bytes());
    bytes.extend(1u16.to_le_bytes()); // PCM
    bytes.extend(1u16.to_le_bytes()); // mono
    bytes.extend(rate.to_le_bytes());
    bytes.extend(rate.wrapping_mul(2).to_le_bytes());
    bytes.extend(2u16.to_le_bytes());
    bytes.extend(16u16.to_le_bytes());
    bytes.extend(b"data");
    bytes.extend(data.to_le_bytes());
    bytes.resize(bytes.len() + data as usize, 0);
    std::fs::write(path, bytes).unwrap();
}
