//! Whisper's audio framing, fixed by the published models: the input rate,
//! the log-mel STFT, the 30-second window and the timestamp grid.

/// Samples per second of Whisper's input; the audio reader resamples every
/// file to it.
pub const SAMPLE_RATE: u32 = 16_000;
/// STFT size of the log-mel front end (25 ms).
pub const N_FFT: usize = 400;
/// Samples between consecutive log-mel frames (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Seconds of audio in one decoding window.
pub const WINDOW_SECONDS: usize = 30;
/// Samples in one decoding window.
pub const WINDOW_SAMPLES: usize = WINDOW_SECONDS * SAMPLE_RATE as usize;
/// Log-mel frames in one decoding window.
pub const WINDOW_FRAMES: usize = WINDOW_SAMPLES / HOP_LENGTH;
/// Log-mel frames per second of audio.
pub const FRAMES_PER_SECOND: f64 = (SAMPLE_RATE as usize / HOP_LENGTH) as f64;
/// Log-mel frames per encoder position (the second convolution has stride
/// 2), which is also the step between timestamp tokens.
pub const FRAMES_PER_TIMESTAMP: usize = 2;
/// Encoder positions per second (1500 over 30 s).
pub const TOKENS_PER_SECOND: f64 = FRAMES_PER_SECOND / FRAMES_PER_TIMESTAMP as f64;
/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = FRAMES_PER_TIMESTAMP as f64 / FRAMES_PER_SECOND;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_values_are_openai_whispers() {
        assert_eq!((WINDOW_SAMPLES, WINDOW_FRAMES), (480_000, 3000));
        assert_eq!(FRAMES_PER_SECOND, 100.0);
        assert_eq!(TOKENS_PER_SECOND, 50.0);
        assert_eq!(TIME_PRECISION, 0.02);
    }
}
