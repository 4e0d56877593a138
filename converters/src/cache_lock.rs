//! One writer at a time per cache entry. Processes sharing a cache (several
//! runs started at once on an empty cache) would each download and convert
//! the same model; with the entry locked, the others wait and then find the
//! first one's result. Holding the lock also proves that staging folders of
//! the entry left from before are abandoned (their writer died), so they are
//! removed.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::atomic::remove_stale_staging;

/// Exclusive use of a cache entry, released when dropped (or when the
/// process dies: the lock belongs to the open file).
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

/// Waits until no other process or thread holds the entry `dest`, then
/// removes the staging folders and files its earlier writers left behind.
pub fn lock_entry(dest: &Path) -> io::Result<EntryLock> {
    let lock_path = lock_path(dest);
    if let Some(parent) = lock_path.parent() {
        fs::create_dir_all(parent)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    file.lock()?;
    let locked_at = SystemTime::now();
    remove_stale_staging(dest, locked_at)?;
    Ok(EntryLock { _file: file })
}

/// `.<name>.lock` beside `dest`: kept after use, as removing it could let a
/// waiting process lock a file that a newcomer no longer sees.
fn lock_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_locker_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("models/entry");
        let first = lock_entry(&dest).unwrap();
        let (sent, received) = mpsc::channel();
        let waiter = {
            let dest = dest.clone();
            std::thread::spawn(move || {
                let _second = lock_entry(&dest).unwrap();
                sent.send(()).unwrap();
            })
        };
        assert!(received.recv_timeout(Duration::from_millis(300)).is_err());
        drop(first);
        received.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn staging_left_by_dead_writers_is_removed_and_other_entries_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("mlx-model");
        let dead = dir.path().join(".mlx-model.partial-abc123");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("weights.safetensors"), "half").unwrap();
        fs::write(dir.path().join(".mlx-model.partial-def456"), "half").unwrap();
        let other = dir.path().join(".mlx-other.partial-abc123");
        fs::create_dir(&other).unwrap();
        std::thread::sleep(Duration::from_millis(20));

        let _lock = lock_entry(&dest).unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".mlx-model.lock", ".mlx-other.partial-abc123"]);
    }
}
