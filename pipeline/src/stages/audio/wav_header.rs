//! The sample rate a RIFF/WAVE file's `fmt ` chunk states, read before the
//! file is probed: symphonia's WAVE reader panics on a rate of 0.

use std::io::{ErrorKind, Read, Seek, SeekFrom};

/// Chunks looked at before giving up on finding `fmt ` (it comes first or
/// nearly so in any real file).
const MAX_CHUNKS: usize = 64;

/// The sample rate of a RIFF/WAVE file, `None` for any other file or one
/// whose `fmt ` chunk is not found (the probe then reports what is wrong).
/// Leaves `file` at its start.
pub(super) fn wav_sample_rate(file: &mut (impl Read + Seek)) -> std::io::Result<Option<u32>> {
    let rate = find_rate(file);
    file.seek(SeekFrom::Start(0))?;
    match rate {
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
        other => other,
    }
}

fn find_rate(file: &mut (impl Read + Seek)) -> std::io::Result<Option<u32>> {
    let mut riff = [0u8; 12];
    file.read_exact(&mut riff)?;
    if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
        return Ok(None);
    }
    for _ in 0..MAX_CHUNKS {
        let mut header = [0u8; 8];
        file.read_exact(&mut header)?;
        let size = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if &header[..4] == b"fmt " {
            // Format tag and channels (2 bytes each), then the rate.
            let mut fmt = [0u8; 8];
            file.read_exact(&mut fmt)?;
            return Ok(Some(u32::from_le_bytes(
                fmt[4..].try_into().expect("4 bytes"),
            )));
        }
        // Chunks are padded to an even length.
        file.seek(SeekFrom::Current(i64::from(size) + i64::from(size & 1)))?;
    }
    Ok(None)
}
