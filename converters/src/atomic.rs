//! Files and folders that appear whole or not at all: written under a
//! temporary name in the destination's folder (so the final rename stays on
//! one file system), flushed to disk, then renamed into place. A failed
//! write leaves nothing behind.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tempfile::{Builder, TempDir};

/// Writes `contents` to `path`, replacing any file there.
pub fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let dir = parent_of(path);
    fs::create_dir_all(dir)?;
    let prefix = staging_prefix(path);
    let mut file = staging(&prefix, FILE_MODE).tempfile_in(dir)?;
    file.write_all(contents.as_ref())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A folder filled under a temporary name beside its destination, removed
/// unless [`StagedFolder::finish`] moves it into place.
pub struct StagedFolder {
    dir: TempDir,
}

impl StagedFolder {
    /// An empty folder beside `dest` (whose parent is created if needed).
    pub fn beside(dest: &Path) -> io::Result<StagedFolder> {
        let parent = parent_of(dest);
        fs::create_dir_all(parent)?;
        let prefix = staging_prefix(dest);
        Ok(StagedFolder {
            dir: staging(&prefix, FOLDER_MODE).tempdir_in(parent)?,
        })
    }

    /// Where to write the folder's files.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Flushes every file in the folder to disk and renames the folder to
    /// `dest`; a folder already at `dest` is replaced.
    pub fn finish(self, dest: &Path) -> io::Result<()> {
        for entry in fs::read_dir(self.path())? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::File::open(entry.path())?.sync_all()?;
            }
        }
        let staged = self.dir.keep();
        let moved = replace_folder(&staged, dest);
        if moved.is_err() {
            let _ = fs::remove_dir_all(&staged);
        }
        moved
    }
}

/// Renames `staged` to `dest`, an existing `dest` first moved aside (a
/// rename cannot replace a folder that has files) and removed afterwards.
fn replace_folder(staged: &Path, dest: &Path) -> io::Result<()> {
    if !dest.exists() {
        return fs::rename(staged, dest);
    }
    let mut old = staged.as_os_str().to_owned();
    old.push(".old");
    let old = PathBuf::from(old);
    fs::rename(dest, &old)?;
    if let Err(e) = fs::rename(staged, dest) {
        let _ = fs::rename(&old, dest);
        return Err(e);
    }
    fs::remove_dir_all(&old)
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Removes the staging files and folders of `dest` last changed before
/// `changed_before`: left by a writer that died (a killed run), since a
/// live writer keeps its staging entry fresh or holds a lock that says so.
pub fn remove_stale_staging(dest: &Path, changed_before: SystemTime) -> io::Result<()> {
    let Some(parent) = dest.parent().filter(|p| p.is_dir()) else {
        return Ok(());
    };
    let prefix = staging_prefix(dest);
    for entry in fs::read_dir(parent)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.modified()? >= changed_before {
            continue;
        }
        tracing::info!(path = %entry.path().display(), "removing what a killed run left");
        if meta.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A hidden temporary name that says what it will become.
pub(crate) fn staging_prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.partial-")
}

/// Creates temporary files or folders under `prefix` with `mode` (less the
/// umask), the permissions of an ordinary file or folder: tempfile's own
/// default is private to the owner.
fn staging(prefix: &str, mode: u32) -> Builder<'_, 'static> {
    let mut builder = Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
}

/// Mode of new files and folders before the umask, as `std::fs` uses.
const FILE_MODE: u32 = 0o666;
const FOLDER_MODE: u32 = 0o777;

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_are_replaced_whole_and_failures_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomically(&path, "first").unwrap();
        write_atomically(&path, "second").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(names(&dir.path().join("sub")), ["out.txt"]);

        // A rename that fails (a folder with files is in the way).
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), "x").unwrap();
        assert!(write_atomically(&blocked, "new").is_err());
        assert_eq!(names(dir.path()), ["blocked", "sub"]);
    }

    #[cfg(unix)]
    #[test]
    fn files_and_folders_get_ordinary_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain_file = dir.path().join("plain.txt");
        fs::write(&plain_file, "x").unwrap();
        let plain_dir = dir.path().join("plain");
        fs::create_dir(&plain_dir).unwrap();

        let file = dir.path().join("atomic.txt");
        write_atomically(&file, "x").unwrap();
        assert_eq!(mode(&file), mode(&plain_file));
        let folder = dir.path().join("atomic");
        StagedFolder::beside(&folder)
            .unwrap()
            .finish(&folder)
            .unwrap();
        assert_eq!(mode(&folder), mode(&plain_dir));
    }

    #[test]
    fn folders_appear_complete_replace_old_ones_or_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model");
        for content in ["old", "new"] {
            let staged = StagedFolder::beside(&dest).unwrap();
            fs::write(staged.path().join("weights"), content).unwrap();
            staged.finish(&dest).unwrap();
        }
        assert_eq!(fs::read_to_string(dest.join("weights")).unwrap(), "new");
        assert_eq!(names(dir.path()), ["model"]);

        let abandoned = StagedFolder::beside(&dir.path().join("other")).unwrap();
        fs::write(abandoned.path().join("weights"), "partial").unwrap();
        drop(abandoned);
        assert_eq!(names(dir.path()), ["model"]);
    }
}
