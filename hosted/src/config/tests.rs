//! The knobs read from a made-up environment (the process's is global: see
//! `hosted/tests/config.rs` for the real one, in child processes).

use super::*;

/// `builder` built against an environment holding only `vars`.
fn build(builder: ConfigBuilder, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    builder.build_with(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

fn env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    build(Config::builder(), vars)
}

/// The message of the error `vars` make.
fn env_error(vars: &[(&str, &str)]) -> String {
    env(vars).unwrap_err().to_string()
}

#[test]
fn an_empty_environment_gives_the_defaults() {
    let config = env(&[]).unwrap();
    assert_eq!(config.resolver(), &ResolverKind::Thread);
    assert_eq!(config.stack_size(), DEFAULT_STACK_SIZE);
    assert_eq!(config.monitor(), cfg!(debug_assertions));
    assert_eq!(config.max_blocking_time(), Duration::from_millis(100));
    assert_eq!(config.max_memory(), None);
    assert_eq!(config.memory_monitor_period(), Duration::from_secs(5));
    assert_eq!(config.threadpool_size(), default_threadpool_size());
    assert!(config.threadpool_size() >= 4);
    assert_eq!(config.poller(), PollerKind::Default);
    let blank: Vec<_> = VARS.iter().map(|v| (*v, " ")).collect();
    assert_eq!(env(&blank), Ok(config), "an empty variable counts as unset");
}

const VARS: &[&str] = &[
    "GEVENT_RESOLVER",
    "GEVENT_RESOLVER_NAMESERVERS",
    "GEVENT_STACK_SIZE",
    "GEVENT_MONITOR_THREAD",
    "GEVENT_MAX_BLOCKING_TIME",
    "GEVENT_MAX_MEMORY",
    "GEVENT_MEMORY_MONITOR_PERIOD",
    "GEVENT_THREADPOOL_SIZE",
    "GEVENT_LOOP",
];

#[test]
fn every_variable_is_read() {
    let config = env(&[
        ("GEVENT_RESOLVER", "native"),
        ("GEVENT_RESOLVER_NAMESERVERS", "192.0.2.1, [2001:db8::1]:5353,"),
        ("GEVENT_STACK_SIZE", "64k"),
        ("GEVENT_MONITOR_THREAD", "off"),
        ("GEVENT_MAX_BLOCKING_TIME", "0.25"),
        ("GEVENT_MAX_MEMORY", "512M"),
        ("GEVENT_MEMORY_MONITOR_PERIOD", "1500ms"),
        ("GEVENT_THREADPOOL_SIZE", "3"),
        ("GEVENT_LOOP", "default"),
    ])
    .unwrap();
    let nameservers = vec!["192.0.2.1:53".parse().unwrap(), "[2001:db8::1]:5353".parse().unwrap()];
    assert_eq!(config.resolver(), &ResolverKind::Native { nameservers });
    assert_eq!(config.stack_size(), 65_536);
    assert!(!config.monitor());
    assert_eq!(config.max_blocking_time(), Duration::from_millis(250));
    assert_eq!(config.max_memory(), Some(512 << 20));
    assert_eq!(config.memory_monitor_period(), Duration::from_millis(1500));
    assert_eq!(config.threadpool_size(), 3);
    assert_eq!(config.poller(), PollerKind::Default);

    assert!(env(&[("GEVENT_MONITOR_THREAD", "yes")]).unwrap().monitor());
    assert_eq!(
        env(&[("GEVENT_MAX_BLOCKING_TIME", "2s")]).unwrap().max_blocking_time().as_secs(),
        2
    );
    let native = env(&[("GEVENT_RESOLVER", "native")]).unwrap();
    assert_eq!(native.resolver(), &ResolverKind::Native { nameservers: vec![] });
    let thread = env(&[("GEVENT_RESOLVER", "thread"), ("GEVENT_RESOLVER_NAMESERVERS", "junk")]);
    assert_eq!(thread.unwrap().resolver(), &ResolverKind::Thread, "servers only matter to native");
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn gevent_loop_takes_epoll_and_refuses_kqueue() {
    assert_eq!(env(&[("GEVENT_LOOP", "epoll")]).unwrap().poller(), PollerKind::Epoll);
    assert_eq!(
        env_error(&[("GEVENT_LOOP", "kqueue")]),
        "GEVENT_LOOP=\"kqueue\" is invalid: expected one of this platform's pollers: default, epoll"
    );
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[test]
fn gevent_loop_takes_kqueue_and_refuses_epoll() {
    assert_eq!(env(&[("GEVENT_LOOP", "kqueue")]).unwrap().poller(), PollerKind::Kqueue);
    assert_eq!(
        env_error(&[("GEVENT_LOOP", "epoll")]),
        "GEVENT_LOOP=\"epoll\" is invalid: expected one of this platform's pollers: default, kqueue"
    );
}

#[test]
fn invalid_values_name_the_variable_the_value_and_what_it_accepts() {
    let cases: &[(&str, &str, &str)] = &[
        ("GEVENT_RESOLVER", "ares", "thread or native"),
        ("GEVENT_STACK_SIZE", "12x", &stack_size_expected()),
        ("GEVENT_STACK_SIZE", "100", &stack_size_expected()),
        ("GEVENT_STACK_SIZE", "2g", &stack_size_expected()),
        ("GEVENT_MONITOR_THREAD", "maybe", SWITCH),
        ("GEVENT_MAX_BLOCKING_TIME", "0", DURATION),
        ("GEVENT_MAX_BLOCKING_TIME", "-1", DURATION),
        ("GEVENT_MAX_BLOCKING_TIME", "100 msec", DURATION),
        ("GEVENT_MAX_MEMORY", "0", BYTES),
        ("GEVENT_MAX_MEMORY", "lots", BYTES),
        ("GEVENT_MEMORY_MONITOR_PERIOD", "0ms", DURATION),
        ("GEVENT_THREADPOOL_SIZE", "0", THREADS),
        ("GEVENT_THREADPOOL_SIZE", "many", THREADS),
        ("GEVENT_LOOP", "libuv", &poller_expected()),
    ];
    for &(var, value, expected) in cases {
        assert_eq!(
            env(&[(var, value)]),
            Err(ConfigError::InvalidVar {
                var: VARS.iter().find(|v| **v == var).unwrap(),
                value: value.to_owned(),
                expected: expected.to_owned()
            }),
            "{var}={value}"
        );
    }
    let servers = [("GEVENT_RESOLVER", "native"), ("GEVENT_RESOLVER_NAMESERVERS", "1.2.3.4,dns")];
    assert_eq!(
        env_error(&servers),
        "GEVENT_RESOLVER_NAMESERVERS=\"1.2.3.4,dns\" is invalid: expected a comma-separated list \
         of ip or ip:port"
    );
    assert_eq!(
        env_error(&[("GEVENT_STACK_SIZE", "12x")]),
        "GEVENT_STACK_SIZE=\"12x\" is invalid: expected a size in bytes from 4096 to 1073741824, \
         optionally with a k, m or g suffix (KiB, MiB, GiB)"
    );
    assert_eq!(
        env_error(&[("GEVENT_MAX_BLOCKING_TIME", "0")]),
        "GEVENT_MAX_BLOCKING_TIME=\"0\" is invalid: expected a duration above zero: seconds (0.1) \
         or a number with a unit (100ms, 2s, 500us)"
    );
}

#[test]
fn the_stack_size_bounds_are_inclusive() {
    let min = MIN_STACK_SIZE.to_string();
    let max = MAX_STACK_SIZE.to_string();
    assert_eq!(env(&[("GEVENT_STACK_SIZE", &min)]).unwrap().stack_size(), MIN_STACK_SIZE);
    assert_eq!(env(&[("GEVENT_STACK_SIZE", &max)]).unwrap().stack_size(), MAX_STACK_SIZE);
    assert_eq!(env(&[("GEVENT_STACK_SIZE", "1g")]).unwrap().stack_size(), MAX_STACK_SIZE);
    let below = (MIN_STACK_SIZE - 1).to_string();
    let above = (MAX_STACK_SIZE + 1).to_string();
    assert!(env(&[("GEVENT_STACK_SIZE", &below)]).is_err());
    assert!(env(&[("GEVENT_STACK_SIZE", &above)]).is_err());
}

#[test]
fn the_builder_wins_over_the_environment() {
    let everything_invalid: Vec<_> = VARS.iter().map(|v| (*v, "invalid")).collect();
    let builder = Config::builder()
        .resolver(ResolverKind::Thread)
        .stack_size(1 << 20)
        .monitor(true)
        .max_blocking_time(Duration::from_millis(20))
        .max_memory(None)
        .memory_monitor_period(Duration::from_secs(1))
        .threadpool_size(2)
        .poller(PollerKind::Default);
    let config = build(builder, &everything_invalid).expect("no variable is read");
    assert_eq!(config.resolver(), &ResolverKind::Thread);
    assert_eq!(config.stack_size(), 1 << 20);
    assert!(config.monitor());
    assert_eq!(config.max_blocking_time(), Duration::from_millis(20));
    assert_eq!(config.max_memory(), None);
    assert_eq!(config.memory_monitor_period(), Duration::from_secs(1));
    assert_eq!(config.threadpool_size(), 2);
    assert_eq!(config.poller(), PollerKind::Default);

    let env = [("GEVENT_STACK_SIZE", "64k"), ("GEVENT_THREADPOOL_SIZE", "9")];
    let config = build(Config::builder().threadpool_size(5), &env).unwrap();
    assert_eq!((config.stack_size(), config.threadpool_size()), (65_536, 5), "one knob each");
    let config = build(Config::builder().max_memory(Some(1 << 30)), &[("GEVENT_MAX_MEMORY", "1k")]);
    assert_eq!(config.unwrap().max_memory(), Some(1 << 30));
    let off = build(Config::builder().max_memory(None), &[("GEVENT_MAX_MEMORY", "1k")]);
    assert_eq!(off.unwrap().max_memory(), None, "None set in code turns the monitor off");
}

#[test]
fn invalid_settings_name_the_setter() {
    let error = |builder: ConfigBuilder| build(builder, &[]).unwrap_err().to_string();
    assert_eq!(
        error(Config::builder().stack_size(100)),
        format!("Config::builder().stack_size(100) is invalid: expected {}", stack_size_expected())
    );
    assert_eq!(
        error(Config::builder().max_blocking_time(Duration::ZERO)),
        format!("Config::builder().max_blocking_time(0ns) is invalid: expected {DURATION}")
    );
    assert_eq!(
        error(Config::builder().memory_monitor_period(Duration::ZERO)),
        format!("Config::builder().memory_monitor_period(0ns) is invalid: expected {DURATION}")
    );
    assert_eq!(
        error(Config::builder().max_memory(Some(0))),
        format!("Config::builder().max_memory(0) is invalid: expected {BYTES}")
    );
    assert_eq!(
        error(Config::builder().threadpool_size(0)),
        format!("Config::builder().threadpool_size(0) is invalid: expected {THREADS}")
    );
    assert!(build(Config::builder().stack_size(MAX_STACK_SIZE + 1), &[]).is_err());
}

#[test]
fn every_poller_has_a_distinct_name() {
    let names: Vec<_> = PollerKind::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(names.len(), 2, "default and this platform's backend: {names:?}");
    assert_eq!(names[0], "default");
    assert_ne!(names[0], names[1]);
}
