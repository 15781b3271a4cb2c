//! Reports the library cannot return as errors: on stderr, or through the `log` facade (the
//! `log` feature) for programs that collect their logs.

use core::fmt;

/// Reports an error: `log::error!` with target `gevent` under the `log` feature, a line on
/// stderr otherwise.
pub fn error(message: fmt::Arguments<'_>) {
    #[cfg(feature = "log")]
    log::error!(target: "gevent", "{message}");
    #[cfg(not(feature = "log"))]
    std::eprintln!("{message}");
}
