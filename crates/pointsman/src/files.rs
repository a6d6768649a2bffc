//! Files written whole or not at all.
//!
//! Everything Pointsman writes (saved routers, reports, decisions, cached embeddings) goes
//! through [`write_atomic`] or [`AtomicFile`]: the bytes go to a temporary file beside the target,
//! are flushed to disk, and the temporary file is renamed over the target. A crash, a full disk
//! or a concurrent reader never sees a half-written file, and a file that is memory-mapped or open
//! elsewhere is replaced, never rewritten in place.
//!
//! A writer killed between creating its temporary file and renaming it leaves the temporary file
//! behind (`.<name>.tmp-<pid>-<n>`, beside the target). The next write of the same target removes
//! those whose process is gone — never a live writer's — so crashes cannot pile them up.
//!
//! Only a regular file (or a symbolic link, which is replaced itself: what it named is left as it
//! was) is ever replaced: a folder, a FIFO, a device or a socket at the target is an error, and so
//! is a target that is one of the command's own inputs ([`refuse_output_among_inputs`]). A
//! regular file this process may not write (mode 0400 for its owner, say) is an error too —
//! renaming needs only the folder's permission, so without the check write protection would be
//! ignored — and a replaced file keeps its permission bits (a private 0600 file stays 0600).
//!
//! Reading goes through [`open_regular`]: only a regular file is opened, so a FIFO without a
//! writer, a device such as `/dev/zero` or a folder is refused before anything is read.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder, flushed to
/// disk, then renamed over `path`.
///
/// # Errors
///
/// [`Error::Io`] naming the path when any step fails (the temporary file is removed) or when
/// `path` is a folder, a FIFO, a device or a socket (nothing is written then).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    refuse_non_file(path)?;
    let mode = replaced_permissions(path)?;
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut f = create_temp(&tmp, mode)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// A file written in place of `path` only when [`AtomicFile::commit`] succeeds; dropped
/// uncommitted, it leaves `path` untouched and removes its temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path` through a temporary file beside it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `path` when the temporary file cannot be created, or when `path` is a
    /// folder, a FIFO, a device or a socket.
    pub fn create(path: &Path) -> Result<Self> {
        refuse_non_file(path)?;
        let mode = replaced_permissions(path)?;
        let tmp = temp_path(path)?;
        let file = create_temp(&tmp, mode).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    /// Flushes, syncs and renames the temporary file over the target path.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the target path.
    pub fn commit(mut self) -> Result<()> {
        self.sync()?;
        self.rename()
    }

    /// Flushes the written bytes and syncs them to disk (a full disk shows here).
    fn sync(&mut self) -> Result<()> {
        let file = self
            .file
            .as_mut()
            .expect("an uncommitted AtomicFile holds its file");
        file.flush()
            .and_then(|()| file.get_ref().sync_all())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Renames the synced temporary file over the target.
    fn rename(mut self) -> Result<()> {
        self.file = None;
        // Checked again: something else may have appeared at the path meanwhile.
        refuse_non_file(&self.path)
            .and_then(|()| {
                std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
            })
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&self.tmp);
            })
    }

    /// The path the file will replace.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Commits the files of one output together: every one is flushed and synced before any is
/// renamed over its target, so a full disk or a failed write leaves every target as it was, not
/// a folder mixing this run's files with an earlier run's. (A rename failing after others
/// succeeded — a folder appearing at a target meanwhile — still leaves the earlier ones
/// replaced.)
///
/// # Errors
///
/// [`Error::Io`] naming the file that failed; the temporary files are removed.
pub fn commit_all(files: Vec<AtomicFile>) -> Result<()> {
    let mut files = files;
    for f in &mut files {
        f.sync()?;
    }
    for f in files {
        f.rename()?;
    }
    Ok(())
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .as_mut()
            .expect("an uncommitted AtomicFile holds its file")
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file
            .as_mut()
            .expect("an uncommitted AtomicFile holds its file")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A folder written in place of `path` only when [`AtomicDir::commit`] succeeds: files go into
/// a temporary folder beside it (`.<name>.tmp-<pid>-<n>`), which is renamed to `path` at the
/// end. Dropped uncommitted (an error half way), it removes the temporary folder and leaves
/// `path` as it was: nothing half-written is ever at `path`.
#[derive(Debug)]
pub struct AtomicDir {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    done: bool,
}

impl AtomicDir {
    /// Starts writing the folder `path`. With `replace`, an existing folder at `path` is
    /// replaced at commit; without, an existing `path` is an error now.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `path` when it exists (without `replace`) or the temporary folder
    /// cannot be created.
    pub fn create(path: &Path, replace: bool) -> Result<Self> {
        let existing = std::fs::symlink_metadata(path).ok();
        if !replace && existing.is_some() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists (choose another folder, or replace it: `--replace` on the \
                     command line, `replace=True` in Python)",
                ),
            ));
        }
        if existing.is_some() {
            refuse_non_folder(path)?;
        }
        let tmp = temp_path(path)?;
        std::fs::create_dir(&tmp).map_err(|e| Error::io(path, e))?;
        Ok(AtomicDir {
            path: path.to_path_buf(),
            tmp,
            done: false,
        })
    }

    /// Where the files go until the commit.
    pub fn dir(&self) -> &Path {
        &self.tmp
    }

    /// Renames the temporary folder to the target path (an existing folder there is moved
    /// aside first and removed after).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the target path.
    pub fn commit(mut self) -> Result<()> {
        let old = if std::fs::symlink_metadata(&self.path).is_ok() {
            // Checked again: a file may have appeared since `create`.
            refuse_non_folder(&self.path)?;
            let aside = temp_path(&self.path)?;
            std::fs::rename(&self.path, &aside).map_err(|e| Error::io(&self.path, e))?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
            if let Some(aside) = &old {
                let _ = std::fs::rename(aside, &self.path);
            }
            return Err(Error::io(&self.path, e));
        }
        self.done = true;
        if let Some(aside) = old {
            // A link (to a folder) moved aside is removed itself, not what it points to.
            let _ = match std::fs::symlink_metadata(&aside) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&aside),
                _ => std::fs::remove_file(&aside),
            };
        }
        Ok(())
    }
}

/// `replace` replaces a folder (or a link to one), never a file or a link to one: a file there is
/// more likely a mistyped path than an earlier output.
fn refuse_non_folder(path: &Path) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let dangling = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::metadata(path).is_err();
    if dangling {
        // A link to nothing holds nothing to lose: replaced like an empty folder.
        return Ok(());
    }
    Err(Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "is a file, not a folder: replacing only replaces a folder (remove the file or \
             choose another path)",
        ),
    ))
}

/// A file is written in place of a regular file or a link (the link itself is replaced), never of
/// a folder, a FIFO, a device or a socket: renaming over those would turn a device node or a pipe
/// into a plain file, or fail half way for a folder.
fn refuse_non_file(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let kind = meta.file_type();
    if kind.is_file() || kind.is_symlink() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "is a folder: give a file path to write"
    } else {
        "is not a regular file (a FIFO, device or socket): only a regular file is replaced"
    };
    Err(Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
    ))
}

/// The permissions a replacement of `path` takes: those of the regular file there, which must be
/// writable by this process (`None` when there is none, or a link, which is replaced itself).
fn replaced_permissions(path: &Path) -> Result<Option<std::fs::Permissions>> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(None);
    };
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    if may_write(path) {
        Ok(Some(meta.permissions()))
    } else {
        Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "is write-protected: it is not replaced (make it writable, or choose another path)",
            ),
        ))
    }
}

/// Whether this process may write the file at `path`, asked of the system without opening it
/// (an open would wake a watcher, break a lease, or block on a FIFO swapped in meanwhile). Root
/// may write any file. A failure to ask (the file gone meanwhile, say) leaves it to the rename.
#[cfg(unix)]
fn may_write(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: a valid NUL-terminated path; faccessat only reads it.
    let r = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::PermissionDenied
}

#[cfg(not(unix))]
fn may_write(path: &Path) -> bool {
    std::fs::metadata(path).map_or(true, |m| !m.permissions().readonly())
}

/// Creates the temporary file, with the replaced file's permissions when there is one (removed
/// again when they cannot be set: a private file's replacement must not be readable by all).
fn create_temp(tmp: &Path, mode: Option<std::fs::Permissions>) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::create(tmp)?;
    if let Some(mode) = mode {
        if let Err(e) = f.set_permissions(mode) {
            drop(f);
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
    }
    Ok(f)
}

/// Refuses to write `out` when it is one of `inputs` — the same file, through whatever path,
/// link or hard link — so that a command cannot replace what it reads (a dataset's records by a
/// router it trained on them, say). Inputs or an output that do not exist are not compared.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming both paths.
pub fn refuse_output_among_inputs<P: AsRef<Path>>(out: &Path, inputs: &[P]) -> Result<()> {
    // By metadata only: opening a FIFO to compare it would block until a writer came.
    let Ok(target) = std::fs::metadata(out) else {
        return Ok(());
    };
    for input in inputs {
        let input = input.as_ref();
        if std::fs::metadata(input).is_ok_and(|m| same_file(&m, &target)) {
            return Err(Error::InvalidInput(format!(
                "{} is one of this command's inputs ({}): writing there would replace what it \
                 reads; choose another output path",
                out.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Whether two metadata describe one file (device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Without inodes, not told apart (the check is skipped).
#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Opens `path` for reading when it is a regular file (symbolic links followed), with its size.
///
/// # Errors
///
/// [`Error::Io`] naming the path when it is missing or unreadable, or is a FIFO, a device, a
/// socket or a folder (nothing is opened or read then).
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a FIFO, device or socket)"
        };
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok((file, meta.len()))
}

/// Reads the whole of `path` when it is a regular file ([`open_regular`]).
///
/// # Errors
///
/// As [`open_regular`]; [`Error::Io`] naming the path when reading fails.
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let (mut file, len) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Reads the whole of `path` as UTF-8 text when it is a regular file ([`open_regular`]).
///
/// # Errors
///
/// As [`read_regular`]; [`Error::Io`] naming the path when the text is not UTF-8.
pub fn read_regular_to_string(path: &Path) -> Result<String> {
    String::from_utf8(read_regular(path)?).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not UTF-8 text (byte {} is not)",
                    e.utf8_error().valid_up_to() + 1
                ),
            ),
        )
    })
}

fn temp_path(path: &Path) -> Result<std::path::PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let prefix = format!(".{}.tmp-", file_name.to_string_lossy());
    remove_orphans(dir, &prefix);
    Ok(dir.join(format!("{prefix}{}-{}", std::process::id(), unique())))
}

/// Removes the temporary files `<prefix><pid>-<n>` in `dir` whose writing process is gone.
/// Best effort: a file that cannot be listed or removed is left.
fn remove_orphans(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let path = entry.path();
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(path);
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Whether a process with this id exists (when in doubt: yes, so its file is kept).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        if unsafe { libc::kill(pid, 0) } == 0 {
            return true;
        }
        // EPERM: it exists but belongs to someone else; ESRCH: it is gone.
        std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let e = write_atomic(&tmp.path().join("missing/dir/a.bin"), b"x").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Io);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"three").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"four").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"four");
    }

    #[test]
    fn orphans_of_dead_writers_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("r.safetensors");
        // A process that has exited: a child we waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let orphan = tmp.path().join(format!(".r.safetensors.tmp-{dead}-0"));
        let mine = tmp
            .path()
            .join(format!(".r.safetensors.tmp-{}-99", std::process::id()));
        let other = tmp.path().join(format!(".other.tmp-{dead}-0"));
        let parent = tmp.path().join(format!(
            ".r.safetensors.tmp-{}-0",
            std::os::unix::process::parent_id()
        ));
        for f in [&orphan, &mine, &other, &parent] {
            std::fs::write(f, b"x").unwrap();
        }
        write_atomic(&p, b"data").unwrap();
        assert!(!orphan.exists(), "the dead writer's file is removed");
        assert!(mine.exists() && parent.exists(), "live writers' files stay");
        assert!(other.exists(), "another target's files are not touched");
    }

    #[test]
    fn atomic_dirs_appear_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("ds");
        let d = AtomicDir::create(&p, false).unwrap();
        std::fs::write(d.dir().join("a"), b"1").unwrap();
        drop(d);
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        let d = AtomicDir::create(&p, false).unwrap();
        std::fs::write(d.dir().join("a"), b"1").unwrap();
        d.commit().unwrap();
        assert_eq!(std::fs::read(p.join("a")).unwrap(), b"1");
        assert_eq!(
            AtomicDir::create(&p, false).unwrap_err().kind(),
            crate::ErrorKind::Io
        );
        let d = AtomicDir::create(&p, true).unwrap();
        std::fs::write(d.dir().join("b"), b"2").unwrap();
        d.commit().unwrap();
        assert!(!p.join("a").exists() && p.join("b").exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

        // `replace` over a file: refused, the file untouched, nothing left beside it.
        let f = tmp.path().join("notes.txt");
        std::fs::write(&f, b"keep").unwrap();
        let e = AtomicDir::create(&f, true).unwrap_err();
        assert!(e.to_string().contains("is a file, not a folder"), "{e}");
        assert_eq!(std::fs::read(&f).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
        let to_file = tmp.path().join("to-notes");
        std::os::unix::fs::symlink(&f, &to_file).unwrap();
        assert!(AtomicDir::create(&to_file, true).is_err());
        // A file that appears between create and commit is not replaced either.
        let late = tmp.path().join("late");
        let d = AtomicDir::create(&late, true).unwrap();
        std::fs::write(&late, b"mine").unwrap();
        assert!(d.commit().is_err());
        assert_eq!(std::fs::read(&late).unwrap(), b"mine");
        std::fs::remove_file(&to_file).unwrap();
        std::fs::remove_file(&late).unwrap();
        // `replace` over a link to a folder: the link is replaced, the folder it named kept.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let d = AtomicDir::create(&link, true).unwrap();
        std::fs::write(d.dir().join("c"), b"3").unwrap();
        d.commit().unwrap();
        assert!(link.join("c").exists() && !link.is_symlink());
        assert!(p.join("b").exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 3);
    }

    #[test]
    fn only_files_and_links_are_replaced_and_never_an_input() {
        use std::os::unix::fs::FileTypeExt;
        let tmp = tempfile::tempdir().unwrap();
        // A folder, a FIFO and a device are refused, whole or streamed, and left as they were.
        let e = write_atomic(tmp.path(), b"x").unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = AtomicFile::create(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(write_atomic(&fifo, b"x").is_err());
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert!(write_atomic(Path::new("/dev/null"), b"x").is_err());
        // One appearing between create and commit is refused too, the temporary file removed.
        let late = tmp.path().join("late");
        let mut f = AtomicFile::create(&late).unwrap();
        f.write_all(b"x").unwrap();
        std::fs::create_dir(&late).unwrap();
        assert!(f.commit().is_err());
        assert!(late.is_dir());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
        // A link is replaced itself; what it names is kept.
        let target = tmp.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(!link.is_symlink() && std::fs::read(&target).unwrap() == b"keep");
        // An output that is an input, through a link or a hard link, is refused.
        let hard = tmp.path().join("hard");
        std::fs::hard_link(&target, &hard).unwrap();
        let other = tmp.path().join("other");
        std::os::unix::fs::symlink(&target, &other).unwrap();
        for out in [&target, &hard, &other] {
            let e = refuse_output_among_inputs(out, &[&link, &target]).unwrap_err();
            assert!(
                e.to_string().contains("one of this command's inputs"),
                "{e}"
            );
        }
        refuse_output_among_inputs(&link, &[&target]).unwrap();
        refuse_output_among_inputs(&tmp.path().join("new"), &[&target]).unwrap();
        // A FIFO is compared without being opened (opening it blocked until a writer came).
        refuse_output_among_inputs(&fifo, &[&target]).unwrap();
        assert!(refuse_output_among_inputs(&fifo, &[&fifo]).is_err());
    }

    #[test]
    fn files_committed_together_are_all_written_before_any_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::write(&a, b"old a").unwrap();
        std::fs::write(&b, b"old b").unwrap();
        let staged = |text: &[u8]| {
            let mut fa = AtomicFile::create(&a).unwrap();
            fa.write_all(text).unwrap();
            let mut fb = AtomicFile::create(&b).unwrap();
            fb.write_all(text).unwrap();
            vec![fa, fb]
        };
        commit_all(staged(b"new")).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new");
        assert_eq!(std::fs::read(&b).unwrap(), b"new");
        // A folder appearing at the second target fails its rename: the first is replaced (the
        // documented limit), the second kept, no temporary file left.
        let files = staged(b"newer");
        std::fs::remove_file(&b).unwrap();
        std::fs::create_dir(&b).unwrap();
        assert!(commit_all(files).is_err());
        assert_eq!(std::fs::read(&a).unwrap(), b"newer");
        assert!(b.is_dir());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_replaced_file_keeps_its_mode_and_a_protected_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("private");
        std::fs::write(&private, b"old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&private, b"new").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            (std::fs::read(&private).unwrap(), mode(&private)),
            (b"new".to_vec(), 0o600)
        );
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut f = AtomicFile::create(&private).unwrap();
        f.write_all(b"streamed").unwrap();
        f.commit().unwrap();
        assert_eq!(mode(&private), 0o640);
        // Write protection holds unless this process may write anyway (root may).
        let protected = tmp.path().join("protected");
        std::fs::write(&protected, b"keep").unwrap();
        std::fs::set_permissions(&protected, std::fs::Permissions::from_mode(0o400)).unwrap();
        let may_write = may_write(&protected);
        if may_write {
            // Root (as in CI) may write it: the refusal below cannot be seen from here.
            eprintln!("note: running as root: the write-protection refusal is not exercised");
        }
        let whole = write_atomic(&protected, b"x");
        let streamed = AtomicFile::create(&protected);
        if may_write {
            assert!(whole.is_ok() && streamed.is_ok());
            assert_eq!(mode(&protected), 0o400);
        } else {
            let e = whole.unwrap_err().to_string();
            assert!(e.contains("is write-protected"), "{e}");
            assert!(streamed.is_err());
            assert_eq!(std::fs::read(&protected).unwrap(), b"keep");
        }
        // Nothing left behind once the uncommitted file is dropped: the two files only.
        drop(streamed);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn only_regular_files_are_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let e = open_regular(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("a folder"), "{e}");
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let f = tmp.path().join("f");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(open_regular(&f).unwrap().1, 3);
        assert_eq!(
            open_regular(&tmp.path().join("nope")).unwrap_err().kind(),
            crate::ErrorKind::Io
        );
    }
}
