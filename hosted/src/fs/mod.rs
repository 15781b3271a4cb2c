//! Files read and written on the thread pool while greenlets keep running (gevent's
//! `FileObjectThread`), shaped like `std::fs`.
//!
//! A regular file is always "ready" to the poller, yet reading it can still wait for a disk or
//! a network file system. So every call here that touches the file system runs on the
//! process's default [thread pool](crate::threadpool) and parks only the calling greenlet; the
//! others run meanwhile. Porting code from `std::fs` is a change of `use` lines.
//!
//! ```
//! use std::io::{Read, Seek, SeekFrom, Write};
//!
//! let path = std::env::temp_dir().join(format!("gevent-fs-doc-{}", std::process::id()));
//! let mut file = gevent::fs::File::create(&path)?;
//! file.write_all(b"hello, file")?;
//! file.seek(SeekFrom::Start(7))?;
//! assert_eq!(gevent::fs::read_to_string(&path)?, "hello, file");
//! gevent::fs::remove_file(&path)?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # Buffers
//!
//! A pool thread never touches the caller's buffer: a greenlet can be killed while its job
//! runs, and the buffer it lent may be gone by the time the job ends. A read fills a buffer the
//! job owns and copies it out on the hub's thread; a write copies the caller's bytes first. One
//! [`Read::read`](std::io::Read::read) or [`Write::write`](std::io::Write::write) moves at most
//! [`MAX_CHUNK`] bytes (a short read or write, which the traits allow);
//! [`read_to_end`](std::io::Read::read_to_end), [`read_to_string`](std::io::Read::read_to_string)
//! and the free functions [`read`] and [`read_to_string`] do the whole file in one job.
//!
//! # Kills and timeouts
//!
//! A kill or a hub [`Timeout`](crate::Timeout) interrupts the waiting greenlet at once, with an
//! `io::Error` that carries the [`Interrupted`](crate::Interrupted) (see
//! [`gevent::io`](crate::io#errors-from-a-kill-or-a-timeout)). The job itself cannot be stopped:
//! it finishes in the background and its result is dropped. So an interrupted read or write may
//! still have moved the file position and changed the file, and an interrupted
//! [`File::open`] with `create` may still create the file.
//!
//! Errors from the operating system come back unchanged, with their kind and code.

mod file;

use std::io;
use std::path::{Path, PathBuf};

use gevent_core::Error;

use crate::threadpool::spawn_blocking;

pub use file::{File, OpenOptions};

/// The most bytes one `read` or `write` call moves between the caller's buffer and the pool.
pub const MAX_CHUNK: usize = 1 << 20;

/// Runs the blocking `op` on the default pool and waits for it, parking only this greenlet.
pub(crate) fn on_pool<T, F>(op: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match spawn_blocking(op).get() {
        Ok(result) => result,
        Err(Error::Interrupted(why)) => Err(why.into()),
        // The job panicked or the pool could not run it; `get` says which, with the job's id.
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

fn owned(path: impl AsRef<Path>) -> PathBuf {
    path.as_ref().to_path_buf()
}

/// The whole contents of the file at `path` (`std::fs::read` on the pool).
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = owned(path);
    on_pool(move || std::fs::read(path))
}

/// The whole contents of the file at `path` as a string (`std::fs::read_to_string` on the
/// pool): [`io::ErrorKind::InvalidData`] if they are not UTF-8.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = owned(path);
    on_pool(move || std::fs::read_to_string(path))
}

/// Writes `contents` as the whole contents of the file at `path`, creating it if needed and
/// truncating it otherwise (`std::fs::write` on the pool). The bytes are copied once, for the
/// pool thread.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let (path, contents) = (owned(path), contents.as_ref().to_vec());
    on_pool(move || std::fs::write(path, contents))
}

/// The metadata of the file at `path`, following symbolic links (`std::fs::metadata`).
pub fn metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    let path = owned(path);
    on_pool(move || std::fs::metadata(path))
}

/// The metadata of `path` itself, not following a symbolic link (`std::fs::symlink_metadata`).
pub fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    let path = owned(path);
    on_pool(move || std::fs::symlink_metadata(path))
}

/// Removes the file at `path` (`std::fs::remove_file`).
pub fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    on_pool(move || std::fs::remove_file(path))
}

/// Renames `from` to `to`, replacing `to` if it exists (`std::fs::rename`).
pub fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (owned(from), owned(to));
    on_pool(move || std::fs::rename(from, to))
}

/// Copies the contents and permissions of `from` to `to`, returning the bytes copied
/// (`std::fs::copy`).
pub fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (owned(from), owned(to));
    on_pool(move || std::fs::copy(from, to))
}

/// Makes the directory `path`; its parent must exist (`std::fs::create_dir`).
pub fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    on_pool(move || std::fs::create_dir(path))
}

/// Makes the directory `path` and any missing parents (`std::fs::create_dir_all`).
pub fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    on_pool(move || std::fs::create_dir_all(path))
}

/// Removes the empty directory `path` (`std::fs::remove_dir`).
pub fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    on_pool(move || std::fs::remove_dir(path))
}

/// Removes the directory `path` and everything in it (`std::fs::remove_dir_all`).
pub fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    on_pool(move || std::fs::remove_dir_all(path))
}

/// The absolute form of `path`, with every symbolic link resolved (`std::fs::canonicalize`).
pub fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = owned(path);
    on_pool(move || std::fs::canonicalize(path))
}

/// The entries of the directory `path` (`std::fs::read_dir`), all read in one pool job: the
/// iterator then never blocks. An error met while listing ends the iteration with it, as
/// `std::fs::ReadDir` reports it.
pub fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = owned(path);
    let entries = on_pool(move || Ok(std::fs::read_dir(path)?.collect::<Vec<_>>()))?;
    Ok(ReadDir { entries: entries.into_iter() })
}

/// The entries of a directory, from [`read_dir`]: `std::fs::DirEntry` values, read up front.
///
/// The entries' own methods (`metadata`, `file_type`) are std's and may block the thread
/// briefly where the directory listing did not say the type.
#[derive(Debug)]
pub struct ReadDir {
    entries: std::vec::IntoIter<io::Result<std::fs::DirEntry>>,
}

impl Iterator for ReadDir {
    type Item = io::Result<std::fs::DirEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}
