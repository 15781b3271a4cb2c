//! The process's configuration: gevent's `gevent.config`, read from `GEVENT_*` environment
//! variables or set in code, code winning.
//!
//! | Variable | Knob ([`ConfigBuilder`] setter) | Accepts | Default |
//! |---|---|---|---|
//! | `GEVENT_RESOLVER` | [`resolver`](ConfigBuilder::resolver) | `thread` or `native` | `thread` |
//! | `GEVENT_RESOLVER_NAMESERVERS` | the servers of [`ResolverKind::Native`] | `ip[:port],...` (port 53 if none); read only with `GEVENT_RESOLVER=native` | `/etc/resolv.conf`'s |
//! | `GEVENT_STACK_SIZE` | [`stack_size`](ConfigBuilder::stack_size) | bytes, optionally with a `k`, `m` or `g` suffix (KiB, MiB, GiB), from [`MIN_STACK_SIZE`] to [`MAX_STACK_SIZE`] | [`DEFAULT_STACK_SIZE`] (256 KiB) |
//! | `GEVENT_MONITOR_THREAD` | [`monitor`](ConfigBuilder::monitor) | `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off` | on in debug builds, off in release builds |
//! | `GEVENT_MAX_BLOCKING_TIME` | [`max_blocking_time`](ConfigBuilder::max_blocking_time) | a duration above zero: seconds (`0.1`, as gevent takes it) or with a unit (`100ms`, `2s`, `500us`) | 100 ms |
//! | `GEVENT_MAX_MEMORY` | [`max_memory`](ConfigBuilder::max_memory) | bytes above zero, with a suffix as above | none: no memory monitor |
//! | `GEVENT_MEMORY_MONITOR_PERIOD` | [`memory_monitor_period`](ConfigBuilder::memory_monitor_period) | a duration above zero | 5 s |
//! | `GEVENT_THREADPOOL_SIZE` | [`threadpool_size`](ConfigBuilder::threadpool_size) | threads, at least 1 | four per core, at least four |
//! | `GEVENT_LOOP` | [`poller`](ConfigBuilder::poller) | `default`, or this platform's backend: `epoll` (Linux, Android) or `kqueue` (macOS, iOS, FreeBSD, DragonFly) | `default` |
//!
//! An empty variable counts as unset. Where each knob takes effect: the resolver when a
//! thread's hub first resolves a name (unless [`dns::set_resolver`](crate::dns::set_resolver)
//! chose one); the stack size for each greenlet spawned without
//! [`Builder::stack_size`](crate::Builder::stack_size), in every hub created after the
//! configuration is fixed; the thread pool size when the
//! [default pool](crate::threadpool::default_pool) is created; the poller when a thread's hub
//! is created. The monitor and memory monitor values are read by those monitors.
//!
//! # Fixing the configuration
//!
//! The process has one configuration, fixed the first time gevent needs it: by
//! [`Config::install`], or else from the environment when the first hub starts (or a name is
//! first resolved, the default thread pool is created, or [`current`] is first called).
//! Install a configuration before the first gevent call:
//!
//! ```
//! use std::time::Duration;
//! use gevent::config::Config;
//!
//! # fn main() -> Result<(), gevent::config::ConfigError> {
//! let config = Config::builder()
//!     .stack_size(512 * 1024)
//!     .max_blocking_time(Duration::from_millis(50))
//!     .build()?; // knobs not set here come from the environment
//! assert_eq!(config.stack_size(), 512 * 1024);
//! config.install()?;
//! gevent::run(|| assert_eq!(gevent::config::current().stack_size(), 512 * 1024));
//! # Ok(())
//! # }
//! ```
//!
//! # Invalid values
//!
//! [`Config::from_env`] and [`ConfigBuilder::build`] return a [`ConfigError`] naming the
//! variable, its value and what it accepts. When nothing was installed, the environment is
//! read when the first hub starts, and an invalid value then **panics** with that error's
//! message (so do [`current`] and the first use of the default thread pool; resolving a name
//! fails with it): a typo in a variable must not go unnoticed, and the hub cannot start with a
//! value nobody chose. To handle the error instead, call `Config::from_env()?.install()?` at
//! start-up.

mod parse;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use gevent_core::stack::{DEFAULT_STACK_SIZE, MIN_STACK_SIZE};

/// The largest stack [`ConfigBuilder::stack_size`] and `GEVENT_STACK_SIZE` accept: 1 GiB. Only
/// touched pages cost memory, but a default above this is a typo, not a plan.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// `GEVENT_MAX_BLOCKING_TIME`'s default: how long a hub may go without switching before the
/// monitor reports it.
pub const DEFAULT_MAX_BLOCKING_TIME: Duration = Duration::from_millis(100);

/// `GEVENT_MEMORY_MONITOR_PERIOD`'s default: how often the memory monitor looks.
pub const DEFAULT_MEMORY_MONITOR_PERIOD: Duration = Duration::from_secs(5);

/// Which resolver a thread's hub uses for names; see [`dns`](crate::dns).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResolverKind {
    /// [`ThreadResolver`](crate::dns::ThreadResolver): the system's `getaddrinfo` on the
    /// thread pool (`GEVENT_RESOLVER=thread`).
    Thread,
    /// [`NativeResolver`](crate::dns::NativeResolver): DNS on cooperative sockets
    /// (`GEVENT_RESOLVER=native`).
    Native {
        /// The servers to ask (`GEVENT_RESOLVER_NAMESERVERS`); `/etc/resolv.conf`'s when
        /// empty.
        nameservers: Vec<SocketAddr>,
    },
}

/// Which readiness mechanism hubs poll with (`GEVENT_LOOP`). Only this platform's backends
/// exist, so a choice it cannot honour does not compile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PollerKind {
    /// The platform's best: epoll on Linux and Android, kqueue on macOS and the BSDs.
    #[default]
    Default,
    /// epoll.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll,
    /// kqueue.
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly"
    ))]
    Kqueue,
}

impl PollerKind {
    /// Every backend this platform has, [`Default`](PollerKind::Default) first.
    pub const ALL: &'static [PollerKind] = &[
        PollerKind::Default,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        PollerKind::Epoll,
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        PollerKind::Kqueue,
    ];

    /// Its name in `GEVENT_LOOP`.
    pub fn name(self) -> &'static str {
        match self {
            PollerKind::Default => "default",
            #[cfg(any(target_os = "linux", target_os = "android"))]
            PollerKind::Epoll => "epoll",
            #[cfg(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "dragonfly"
            ))]
            PollerKind::Kqueue => "kqueue",
        }
    }
}

/// Why a configuration could not be made or installed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable holds a value its knob does not accept.
    InvalidVar {
        /// The variable, such as `GEVENT_STACK_SIZE`.
        var: &'static str,
        /// Its value (lossily decoded if it was not UTF-8).
        value: String,
        /// What the variable accepts.
        expected: String,
    },
    /// A [`ConfigBuilder`] setter was given a value its knob does not accept.
    InvalidSetting {
        /// The setter, such as `stack_size`.
        setting: &'static str,
        /// The value given, as `Debug` shows it.
        value: String,
        /// What the setter accepts.
        expected: String,
    },
    /// [`Config::install`] was called before: a process has one configuration.
    AlreadyInstalled,
    /// The configuration was already fixed from the environment (a hub started, or
    /// [`current`] was called) and differs from the one being installed.
    AlreadyInUse,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidVar { var, value, expected } => {
                write!(f, "{var}={value:?} is invalid: expected {expected}")
            }
            ConfigError::InvalidSetting { setting, value, expected } => {
                write!(f, "Config::builder().{setting}({value}) is invalid: expected {expected}")
            }
            ConfigError::AlreadyInstalled => {
                f.write_str("a gevent configuration was already installed: install one per process")
            }
            ConfigError::AlreadyInUse => f.write_str(
                "gevent's configuration was already read from the environment (a hub started, or \
                 config::current() was called) and differs from the one being installed: install \
                 it before the first gevent call",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// gevent's knobs for this process; see the [module docs](self) for each one's variable and
/// default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    resolver: ResolverKind,
    stack_size: usize,
    monitor: bool,
    max_blocking_time: Duration,
    max_memory: Option<u64>,
    memory_monitor_period: Duration,
    threadpool_size: usize,
    poller: PollerKind,
}

impl Config {
    /// A builder whose unset knobs come from the environment, then from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The configuration the `GEVENT_*` variables describe, the defaults for those unset: what
    /// a process gets when it installs none. An invalid value is an error naming the variable.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::builder().build()
    }

    /// Makes this the process's configuration.
    ///
    /// Fails with [`ConfigError::AlreadyInstalled`] on a second call, and with
    /// [`ConfigError::AlreadyInUse`] if the configuration was already fixed from the
    /// environment (a hub started before) and differs from this one; installing one equal to
    /// it is allowed.
    pub fn install(self) -> Result<(), ConfigError> {
        static INSTALLED: Mutex<bool> = Mutex::new(false);
        // Held throughout, so that of two racing installs the second sees the first's.
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if *installed {
            return Err(ConfigError::AlreadyInstalled);
        }
        if let Err(refused) = CURRENT.set(Ok(self)) {
            if CURRENT.get() != Some(&refused) {
                return Err(ConfigError::AlreadyInUse);
            }
        }
        *installed = true;
        Ok(())
    }

    /// Which resolver hubs use for names (`GEVENT_RESOLVER`, `GEVENT_RESOLVER_NAMESERVERS`).
    pub fn resolver(&self) -> &ResolverKind {
        &self.resolver
    }

    /// The stack size, in bytes, of greenlets spawned without one (`GEVENT_STACK_SIZE`);
    /// stacks are rounded up to whole pages.
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// Whether the blocking monitor runs (`GEVENT_MONITOR_THREAD`).
    pub fn monitor(&self) -> bool {
        self.monitor
    }

    /// How long a hub may go without switching before the monitor reports it
    /// (`GEVENT_MAX_BLOCKING_TIME`); never zero.
    pub fn max_blocking_time(&self) -> Duration {
        self.max_blocking_time
    }

    /// The resident memory, in bytes, above which the memory monitor reports
    /// (`GEVENT_MAX_MEMORY`); `None`: no memory monitor. Never `Some(0)`.
    pub fn max_memory(&self) -> Option<u64> {
        self.max_memory
    }

    /// How often the memory monitor looks (`GEVENT_MEMORY_MONITOR_PERIOD`); never zero.
    pub fn memory_monitor_period(&self) -> Duration {
        self.memory_monitor_period
    }

    /// The most threads the [default thread pool](crate::threadpool::default_pool) runs at
    /// once (`GEVENT_THREADPOOL_SIZE`); at least 1.
    pub fn threadpool_size(&self) -> usize {
        self.threadpool_size
    }

    /// Which poller hubs use (`GEVENT_LOOP`).
    pub fn poller(&self) -> PollerKind {
        self.poller
    }
}

/// Builds a [`Config`]: each knob set here wins over its environment variable; see the
/// [module docs](self). Values are checked by [`build`](Self::build).
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct ConfigBuilder {
    resolver: Option<ResolverKind>,
    stack_size: Option<usize>,
    monitor: Option<bool>,
    max_blocking_time: Option<Duration>,
    max_memory: Option<Option<u64>>,
    memory_monitor_period: Option<Duration>,
    threadpool_size: Option<usize>,
    poller: Option<PollerKind>,
}

impl ConfigBuilder {
    /// The resolver hubs use for names.
    pub fn resolver(mut self, resolver: ResolverKind) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The stack size, in bytes, of greenlets spawned without one: from
    /// [`MIN_STACK_SIZE`] to [`MAX_STACK_SIZE`].
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Whether the blocking monitor runs.
    pub fn monitor(mut self, on: bool) -> Self {
        self.monitor = Some(on);
        self
    }

    /// How long a hub may go without switching before the monitor reports it; above zero.
    pub fn max_blocking_time(mut self, budget: Duration) -> Self {
        self.max_blocking_time = Some(budget);
        self
    }

    /// The resident memory, in bytes, above which the memory monitor reports (above zero), or
    /// `None` for no memory monitor.
    pub fn max_memory(mut self, bytes: Option<u64>) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// How often the memory monitor looks; above zero.
    pub fn memory_monitor_period(mut self, period: Duration) -> Self {
        self.memory_monitor_period = Some(period);
        self
    }

    /// The most threads the default thread pool runs at once; at least 1.
    pub fn threadpool_size(mut self, threads: usize) -> Self {
        self.threadpool_size = Some(threads);
        self
    }

    /// The poller hubs use.
    pub fn poller(mut self, poller: PollerKind) -> Self {
        self.poller = Some(poller);
        self
    }

    /// The configuration: the knobs set here, the environment's for the others, the defaults
    /// for those unset there too. Fails on the first invalid value, naming it.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.build_with(&|var| {
            std::env::var_os(var).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// [`build`](Self::build), reading variables through `env`.
    fn build_with(
        self,
        env: &dyn Fn(&'static str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let var = Var { env };
        let resolver = match self.resolver {
            Some(resolver) => resolver,
            None => var.resolver()?,
        };
        let stack_size = match self.stack_size {
            Some(bytes) => check(bytes, "stack_size", valid_stack_size, stack_size_expected)?,
            None => var
                .get("GEVENT_STACK_SIZE", stack_size_expected, |text| {
                    usize::try_from(parse::size(text)?).ok().filter(valid_stack_size)
                })?
                .unwrap_or(DEFAULT_STACK_SIZE),
        };
        let monitor = match self.monitor {
            Some(on) => on,
            None => var
                .get("GEVENT_MONITOR_THREAD", || SWITCH.into(), parse::switch)?
                .unwrap_or(cfg!(debug_assertions)),
        };
        let max_blocking_time =
            var.duration(self.max_blocking_time, "max_blocking_time", "GEVENT_MAX_BLOCKING_TIME")?;
        let max_blocking_time = max_blocking_time.unwrap_or(DEFAULT_MAX_BLOCKING_TIME);
        let max_memory = match self.max_memory {
            Some(None) => None,
            Some(Some(bytes)) => Some(check(bytes, "max_memory", |&b| b > 0, || BYTES.into())?),
            None => var.get(
                "GEVENT_MAX_MEMORY",
                || BYTES.into(),
                |text| parse::size(text).filter(|&b| b > 0),
            )?,
        };
        let memory_monitor_period = var.duration(
            self.memory_monitor_period,
            "memory_monitor_period",
            "GEVENT_MEMORY_MONITOR_PERIOD",
        )?;
        let memory_monitor_period = memory_monitor_period.unwrap_or(DEFAULT_MEMORY_MONITOR_PERIOD);
        let threadpool_size = match self.threadpool_size {
            Some(threads) => check(threads, "threadpool_size", |&n| n >= 1, || THREADS.into())?,
            None => var
                .get(
                    "GEVENT_THREADPOOL_SIZE",
                    || THREADS.into(),
                    |text| parse::count(text).filter(|&n| n >= 1),
                )?
                .unwrap_or_else(default_threadpool_size),
        };
        let poller = match self.poller {
            Some(poller) => poller,
            None => var
                .get("GEVENT_LOOP", poller_expected, |text| {
                    PollerKind::ALL.iter().copied().find(|p| p.name() == text.trim())
                })?
                .unwrap_or_default(),
        };
        Ok(Config {
            resolver,
            stack_size,
            monitor,
            max_blocking_time,
            max_memory,
            memory_monitor_period,
            threadpool_size,
            poller,
        })
    }
}

const SWITCH: &str = "1, true, yes, on, 0, false, no or off";
const BYTES: &str =
    "a size in bytes above zero, optionally with a k, m or g suffix (KiB, MiB, GiB)";
const DURATION: &str =
    "a duration above zero: seconds (0.1) or a number with a unit (100ms, 2s, 500us)";
const THREADS: &str = "a number of threads, at least 1";

fn valid_stack_size(bytes: &usize) -> bool {
    (MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(bytes)
}

fn stack_size_expected() -> String {
    format!(
        "a size in bytes from {MIN_STACK_SIZE} to {MAX_STACK_SIZE}, optionally with a k, m or g \
         suffix (KiB, MiB, GiB)"
    )
}

fn poller_expected() -> String {
    let names: Vec<_> = PollerKind::ALL.iter().map(|p| p.name()).collect();
    format!("one of this platform's pollers: {}", names.join(", "))
}

/// Four threads per core, at least four: blocking jobs mostly wait, so more threads than cores
/// pay off.
fn default_threadpool_size() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.saturating_mul(4).max(4)
}

/// `value` if `valid`, else the error naming the setter.
fn check<T: fmt::Debug>(
    value: T,
    setting: &'static str,
    valid: impl Fn(&T) -> bool,
    expected: impl Fn() -> String,
) -> Result<T, ConfigError> {
    if valid(&value) {
        Ok(value)
    } else {
        Err(ConfigError::InvalidSetting {
            setting,
            value: format!("{value:?}"),
            expected: expected(),
        })
    }
}

/// Reads and parses the variables.
struct Var<'a> {
    env: &'a dyn Fn(&'static str) -> Option<String>,
}

impl Var<'_> {
    /// `var`'s value parsed, `None` if unset or empty, or the error naming it.
    fn get<T>(
        &self,
        var: &'static str,
        expected: impl Fn() -> String,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = (self.env)(var).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        match parse(&value) {
            Some(parsed) => Ok(Some(parsed)),
            None => Err(ConfigError::InvalidVar { var, value, expected: expected() }),
        }
    }

    /// The duration set in code, else `var`'s; either must be above zero.
    fn duration(
        &self,
        set: Option<Duration>,
        setting: &'static str,
        var: &'static str,
    ) -> Result<Option<Duration>, ConfigError> {
        let above_zero = |d: &Duration| !d.is_zero();
        match set {
            Some(d) => check(d, setting, above_zero, || DURATION.into()).map(Some),
            None => {
                self.get(var, || DURATION.into(), |text| parse::duration(text).filter(above_zero))
            }
        }
    }

    fn resolver(&self) -> Result<ResolverKind, ConfigError> {
        let kind = self.get(
            "GEVENT_RESOLVER",
            || "thread or native".into(),
            |text| match text.trim() {
                "thread" => Some(false),
                "native" => Some(true),
                _ => None,
            },
        )?;
        if kind != Some(true) {
            return Ok(ResolverKind::Thread);
        }
        let nameservers = self.get(
            "GEVENT_RESOLVER_NAMESERVERS",
            || "a comma-separated list of ip or ip:port".into(),
            |text| {
                let servers = text.split(',').map(str::trim).filter(|s| !s.is_empty());
                servers.map(crate::dns::parse_nameserver).collect::<Option<Vec<_>>>()
            },
        )?;
        Ok(ResolverKind::Native { nameservers: nameservers.unwrap_or_default() })
    }
}

/// The process's configuration once fixed: installed, or read from the environment.
static CURRENT: OnceLock<Result<Config, ConfigError>> = OnceLock::new();

/// The process's configuration: the installed one, or else the environment's, read on first
/// use.
///
/// # Panics
///
/// If nothing was installed and a `GEVENT_*` variable holds an invalid value, with the
/// [`ConfigError`]'s message, on this and every later call (the first hub start calls it).
/// Call `Config::from_env()?.install()?` first to handle the error instead.
pub fn current() -> &'static Config {
    match try_current() {
        Ok(config) => config,
        Err(e) => panic!("gevent: invalid configuration: {e}"),
    }
}

/// [`current`], or the error that keeps it from being read.
pub(crate) fn try_current() -> Result<&'static Config, &'static ConfigError> {
    CURRENT.get_or_init(Config::from_env).as_ref()
}

#[cfg(test)]
mod tests;
