//! The precompiled sandbox as a file, so every process maps it instead of copying it.
//!
//! `Module::deserialize` of the embedded bytes copies the whole precompiled guest (code and the
//! snapshot's memory image, about 70 MB) into fresh memory on every start: most of a short
//! command's time and resident memory. `Module::deserialize_file` maps a file instead, so code
//! and memory image are shared copy-on-write from the page cache by every process and every
//! instance. [`ready_file`] provides that file: `sandbox-<key>.cwasm` in codemode's cache folder,
//! the key naming the module and the engine configuration, written once and atomically (a
//! temporary file renamed into place).
//!
//! The file is code codemode will run, so it is used only when nobody but this user can have
//! written it: the folder and the file must be this user's, neither writable by group or others,
//! neither a symbolic link, and the file exactly as long as the embedded module (wasmtime then
//! checks its header, version and configuration). Anything else, and any I/O error, means
//! loading from the embedded bytes as before.

use std::fs::{self, DirBuilder, Metadata, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// codemode's cache folder: `$CODEMODE_CACHE_DIR`, else `$XDG_CACHE_HOME/codemode`, else
/// `~/.cache/codemode`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CODEMODE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("codemode"))
}

/// The path of a trusted file in `dir` holding `bytes` under `key`, written now if need be;
/// `None` when there cannot be one.
pub fn ready_file(dir: &Path, key: &str, bytes: &[u8]) -> Option<PathBuf> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ok()?;
    let owner = fs::metadata("/proc/self").ok()?.uid();
    if !trusted(&fs::symlink_metadata(dir).ok()?, owner) {
        tracing::warn!(dir = %dir.display(), "not using the sandbox cache: the folder is not this user's alone");
        return None;
    }
    let path = dir.join(format!("sandbox-{key}.cwasm"));
    match fs::symlink_metadata(&path) {
        Ok(meta) if trusted(&meta, owner) && meta.len() == bytes.len() as u64 => Some(path),
        Ok(meta) if !trusted(&meta, owner) => {
            tracing::warn!(file = %path.display(), "not using the sandbox cache: the file is not this user's alone");
            None
        }
        _ => write(dir, &path, bytes).ok().map(|()| path),
    }
}

/// Whether `meta` is a plain file or folder of `owner` that nobody else may write.
fn trusted(meta: &Metadata, owner: u32) -> bool {
    !meta.file_type().is_symlink() && meta.uid() == owner && meta.mode() & 0o022 == 0
}

/// Writes `bytes` to `path` through a temporary file in `dir`, so no process maps a partial one.
fn write(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // One name per writer: two executors of one process may start at once.
    static WRITERS: AtomicUsize = AtomicUsize::new(0);
    let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(".sandbox-{}-{writer}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes));
    match written.and_then(|()| fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("codemode-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_file_is_written_once_then_reused() {
        let dir = scratch("reuse");
        let path = ready_file(&dir, "k", b"module").expect("written");
        assert_eq!(fs::read(&path).expect("read"), b"module");
        let mode = fs::metadata(&path).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ready_file(&dir, "k", b"module"), Some(path.clone()));
        // A file of another length (another build under the same key) is replaced.
        fs::write(&path, b"short").expect("write");
        assert_eq!(ready_file(&dir, "k", b"module"), Some(path.clone()));
        assert_eq!(fs::read(&path).expect("read"), b"module");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_or_folder_others_may_write_is_not_used() {
        let dir = scratch("loose");
        let path = ready_file(&dir, "k", b"module").expect("written");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
        assert_eq!(ready_file(&dir, "k", b"module"), None);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        assert_eq!(ready_file(&dir, "k", b"module"), None);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symbolic_link_is_not_used() {
        let dir = scratch("link");
        fs::create_dir_all(&dir).expect("dir");
        let elsewhere = dir.join("elsewhere");
        fs::write(&elsewhere, b"module").expect("write");
        std::os::unix::fs::symlink(&elsewhere, dir.join("sandbox-k.cwasm")).expect("link");
        assert_eq!(ready_file(&dir, "k", b"module"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
