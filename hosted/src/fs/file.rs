//! [`File`] and [`OpenOptions`]: `std::fs`'s, with every call run on the thread pool.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use super::{MAX_CHUNK, on_pool, owned};

/// An open file whose reads, writes and other calls run on the thread pool while the calling
/// greenlet parks (gevent's `FileObjectThread`); the `std::fs::File` API otherwise.
///
/// `&File` reads, writes and seeks too, as `&std::fs::File` does, so greenlets can share one;
/// they then share its position. A `File` is `Send` and `Sync`: its calls park the greenlet of
/// whichever thread makes them.
///
/// The descriptor is shared with the pool jobs working on it, so that a job still running after
/// its greenlet was interrupted never sees it closed (see the
/// [module documentation](super#kills-and-timeouts)): the descriptor is closed when the `File`
/// and all its jobs are gone.
pub struct File {
    inner: Arc<std::fs::File>,
}

impl File {
    /// Opens the file at `path` for reading (`std::fs::File::open`).
    pub fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens the file at `path` for writing, creating it if it does not exist and truncating it
    /// if it does (`std::fs::File::create`).
    pub fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().write(true).create(true).truncate(true).open(path)
    }

    /// Creates a new file at `path` for reading and writing, failing with
    /// [`io::ErrorKind::AlreadyExists`] if it exists (`std::fs::File::create_new`).
    pub fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create_new(true).open(path)
    }

    /// Options to open a file with, all off: [`OpenOptions::new`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    pub fn sync_all(&self) -> io::Result<()> {
        self.run(|f| f.sync_all())
    }

    /// Flushes the file's data to the device, and only the metadata needed to read it back
    /// (`fdatasync`).
    pub fn sync_data(&self) -> io::Result<()> {
        self.run(|f| f.sync_data())
    }

    /// Truncates or extends the file to `size` bytes; the position does not move.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.run(move |f| f.set_len(size))
    }

    /// The file's metadata.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.run(|f| f.metadata())
    }

    /// Changes the file's permissions.
    pub fn set_permissions(&self, permissions: std::fs::Permissions) -> io::Result<()> {
        self.run(move |f| f.set_permissions(permissions))
    }

    /// A new `File` on the same open file (a duplicated descriptor): position and flags are
    /// shared. Duplicating never waits for the device, so it runs on the calling thread.
    pub fn try_clone(&self) -> io::Result<File> {
        Ok(File::from(self.inner.try_clone()?))
    }

    /// The `std::fs::File` under this one. If a pool job interrupted earlier still holds the
    /// descriptor, a duplicate is returned instead (which can fail like
    /// [`try_clone`](Self::try_clone)), and the original closes when that job ends.
    pub fn into_std(self) -> io::Result<std::fs::File> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    /// Runs `op` on the pool with the shared file.
    fn run<T, F>(&self, op: F) -> io::Result<T>
    where
        F: FnOnce(&std::fs::File) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let file = self.inner.clone();
        on_pool(move || op(&file))
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File { inner: Arc::new(file) }
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from(std::fs::File::from(fd))
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("fd", &self.as_raw_fd()).finish()
    }
}

impl Read for &File {
    /// Reads at most [`MAX_CHUNK`] bytes into a buffer the pool job owns, then copies them into
    /// `buf`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(MAX_CHUNK);
        let data = self.run(move |mut f| {
            let mut data = vec![0; len];
            let n = f.read(&mut data)?;
            data.truncate(n);
            Ok(data)
        })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Reads the rest of the file in one pool job. As `std` does, the bytes read before an
    /// error are appended too.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let (data, result) = self.run(|mut f| {
            let mut data = Vec::new();
            let result = f.read_to_end(&mut data);
            Ok((data, result))
        })?;
        if buf.is_empty() {
            *buf = data;
        } else {
            buf.extend_from_slice(&data);
        }
        result
    }

    /// Reads the rest of the file in one pool job. As `std` does, nothing is appended if the
    /// bytes are not UTF-8 ([`io::ErrorKind::InvalidData`]), and the valid bytes read before
    /// an error are.
    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        let (data, result) = self.run(|mut f| {
            let mut data = Vec::new();
            let result = f.read_to_end(&mut data);
            Ok((data, result))
        })?;
        match String::from_utf8(data) {
            Ok(text) => {
                if buf.is_empty() {
                    *buf = text;
                } else {
                    buf.push_str(&text);
                }
                result
            }
            Err(e) => result.and_then(|_| {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the file is not valid UTF-8: {}", e.utf8_error()),
                ))
            }),
        }
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        (&*self).read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        (&*self).read_to_string(buf)
    }
}

impl Write for &File {
    /// Copies at most [`MAX_CHUNK`] bytes of `buf` for the pool job, which writes them.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let data = buf[..buf.len().min(MAX_CHUNK)].to_vec();
        self.run(move |mut f| f.write(&data))
    }

    /// Writes `buf` in jobs of at most [`MAX_CHUNK`] bytes, each writing its chunk whole: one
    /// pool round trip per chunk, and at most one chunk copied at a time.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        for chunk in buf.chunks(MAX_CHUNK) {
            let data = chunk.to_vec();
            self.run(move |mut f| f.write_all(&data))?;
        }
        Ok(())
    }

    /// A file holds no buffer of ours (nor does `std::fs::File`): there is nothing to flush.
    /// [`File::sync_all`] is what makes the data durable.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.run(move |mut f| f.seek(pos))
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

/// How to open a [`File`]: `std::fs::OpenOptions`, with [`open`](Self::open) run on the pool.
/// The Unix extensions (`mode`, `custom_flags`) come with [`OpenOptionsExt`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// No access and no creation: set at least [`read`](Self::read), [`write`](Self::write)
    /// or [`append`](Self::append).
    pub fn new() -> Self {
        OpenOptions { std: std::fs::OpenOptions::new() }
    }

    /// Opens for reading.
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.std.read(read);
        self
    }

    /// Opens for writing.
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.std.write(write);
        self
    }

    /// Opens for writing at the end: every write goes after what the file holds.
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.std.append(append);
        self
    }

    /// Empties a file that exists (needs write access).
    pub fn truncate(&mut self, truncate: bool) -> &mut Self {
        self.std.truncate(truncate);
        self
    }

    /// Creates the file if it does not exist (needs write or append access).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.std.create(create);
        self
    }

    /// Creates the file, failing with [`io::ErrorKind::AlreadyExists`] if it exists; `create`
    /// and `truncate` are then ignored.
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.std.create_new(create_new);
        self
    }

    /// Opens the file at `path` with these options on the pool. Opening can wait (a FIFO with
    /// no writer, a slow network file system); only the calling greenlet waits.
    pub fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let (options, path) = (self.std.clone(), owned(path));
        on_pool(move || options.open(path)).map(File::from)
    }
}

impl OpenOptionsExt for OpenOptions {
    fn mode(&mut self, mode: u32) -> &mut Self {
        self.std.mode(mode);
        self
    }

    fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.std.custom_flags(flags);
        self
    }
}
