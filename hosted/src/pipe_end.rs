//! What every cooperative pipe end shares (`os::pipe`'s ends, a child's standard streams): a
//! struct with a `registration: IoRegistration<OwnedFd>` field gets cooperative `Read` or
//! `Write` (for itself and for a shared reference), its descriptor conversions and `Debug`.

/// `Read` for `$end` and `&$end`, through the shared `io::retry` loop.
macro_rules! readable_pipe_end {
    ($end:ty) => {
        impl std::io::Read for &$end {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                $crate::io::retry(
                    &self.registration,
                    gevent_core::platform::Interest::READABLE,
                    None,
                    |fd| rustix::io::read(fd, &mut *buf),
                )
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                $crate::io::retry(
                    &self.registration,
                    gevent_core::platform::Interest::READABLE,
                    None,
                    |fd| rustix::io::readv(fd, &mut *bufs),
                )
            }
        }

        impl std::io::Read for $end {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }
    };
}

/// `Write` for `$end` and `&$end`, through the shared `io::retry` loop.
macro_rules! writable_pipe_end {
    ($end:ty) => {
        impl std::io::Write for &$end {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                $crate::io::retry(
                    &self.registration,
                    gevent_core::platform::Interest::WRITABLE,
                    None,
                    |fd| rustix::io::write(fd, buf),
                )
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                $crate::io::retry(
                    &self.registration,
                    gevent_core::platform::Interest::WRITABLE,
                    None,
                    |fd| rustix::io::writev(fd, bufs),
                )
            }

            /// A pipe holds no buffer of ours: there is nothing to flush.
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Write for $end {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                std::io::Write::flush(&mut &*self)
            }
        }
    };
}

/// `AsFd`, `AsRawFd`, `From<$end> for OwnedFd` (deregistered, still non-blocking) and `Debug`.
macro_rules! pipe_end_fds {
    ($end:ty) => {
        impl std::os::fd::AsFd for $end {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.registration.source())
            }
        }

        impl std::os::fd::AsRawFd for $end {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self.registration.source())
            }
        }

        /// Deregisters the end from the hub and gives its descriptor, still non-blocking.
        impl From<$end> for std::os::fd::OwnedFd {
            fn from(end: $end) -> std::os::fd::OwnedFd {
                end.registration.into_inner()
            }
        }

        impl std::fmt::Debug for $end {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let fd = std::os::fd::AsRawFd::as_raw_fd(self);
                f.debug_struct(stringify!($end)).field("fd", &fd).finish()
            }
        }
    };
}

pub(crate) use {pipe_end_fds, readable_pipe_end, writable_pipe_end};
