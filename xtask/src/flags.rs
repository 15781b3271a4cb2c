//! Command-line parsing, by hand: the commands are few and their flags simple.

use core::fmt;

/// What `cargo xtask --help` prints, and what a bad command line prints after its error.
pub(crate) const HELP: &str = "\
Usage: cargo xtask <COMMAND>

Commands:
  test [--quick] [--lean] [--only TEXT]
      Run the whole test matrix: fmt, clippy, the tests of each package, docs, miri,
      no_std and cross-target builds, the demo. Every step runs even after a failure;
      a summary follows, and the exit status is non-zero if any step failed.
      --quick      skip miri, the release-mode tests and the cross-target steps
      --lean       remove the build directories of steps that have one of their own
                   (miri, loom, ASan, each firmware, the fuzzer) once the last step that
                   uses one has run, and print the free disk space after each: for
                   machines with little disk (`.ci/run` passes it)
      --only TEXT  run only the steps whose names contain TEXT (say 'firmware')

  bench [--anchors] [--embedded] [--runs N] [--secs N] [--print-cmd] [WORKLOAD...]
      Build gevent-bench in release mode and run the workloads of shared/anchors/README.md
      (switch spawn idle queue echo http), and ours alone: group_spawn (spawning into a
      Group against plain spawns), idle_conns (memory per idle connection, 10,000 of
      them), http_conns (memory per keep-alive HTTP connection, 10,000 of them) and
      monitor_overhead (the switch workload with the blocking monitor off and on).
      By default: switch spawn idle queue group_spawn idle_conns http_conns monitor_overhead.
      echo runs our server pinned to CPU 0 and the anchors' echo_load pinned to CPU 1
      (built into $TARGET_DIR, default ~/.cache/anchors-target; port $PORT, default 9123);
      http runs our HTTP server pinned to CPU 0 and wrk -t1 -c100 pinned to CPU 1.
      --anchors    run them through the anchors' run.sh, next to gevent, tokio and may,
                   and print how we compare (anchors folder: $ANCHORS_DIR, or
                   ../shared/anchors next to the workspace)
      --embedded   run the firmware benchmark (examples/firmware-bench) and the embassy
                   anchor ($ANCHORS_DIR/embassy) under QEMU with -icount shift=0, and compare
                   their instruction counts (mcu_yield, mcu_channel, mcu_spawn) and RAM per
                   parked greenlet (mcu_idle); alone unless workloads are named too
      --runs N     runs of each workload (with --anchors the median is kept; default 3,
                   or 1 without --anchors)
      --secs N     how long echo and http are loaded (default $SECS, or 10)
      --print-cmd  print the command that starts our server for each server workload
                   (echo, http), to which a runner appends the port, and run nothing
      Also ours alone, never by default:
      tls_echo       the echo workload over TLS 1.3: our server and the same one on tokio +
                     tokio-rustls (bench/tls-anchor, built into target/tls-anchor), runs
                     interleaved, each pinned to CPU 0 and loaded by tls_load on CPU 1; the
                     medians and their ratio
      tls_handshake  full TLS 1.3 handshakes per second, the same pair and load
      dns            queries per second of the native resolver, 100 in flight, against a
                     dnsmasq that it starts (on CPU 1)

  help, -h, --help
      Print this help.
";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `help`, `-h` or `--help`.
    Help,
    /// `test`.
    Test(Test),
    /// `bench`.
    Bench(Bench),
}

/// `cargo xtask test`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Test {
    /// Skip the slow steps: miri, the release-mode tests, the cross-target steps.
    pub(crate) quick: bool,
    /// `--lean`: remove a step's own build directory once no later step uses it.
    pub(crate) lean: bool,
    /// `--only TEXT`: run only the steps whose names contain it.
    pub(crate) only: Option<String>,
}

/// `cargo xtask bench`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bench {
    /// Run through the anchors' `run.sh`, next to the anchor implementations.
    pub(crate) anchors: bool,
    /// `--embedded`: the firmware benchmark and the embassy anchor.
    pub(crate) embedded: bool,
    /// `--runs N`, if given.
    pub(crate) runs: Option<u32>,
    /// `--secs N`, if given.
    pub(crate) secs: Option<u32>,
    /// `--print-cmd`: print how to start our servers instead of running anything.
    pub(crate) print_cmd: bool,
    /// The workloads, in the order given, without repeats; empty only with `embedded`.
    pub(crate) workloads: Vec<Workload>,
}

/// The workloads of `shared/anchors/README.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Two greenlets yielding to each other.
    Switch,
    /// Spawn and join 100,000 greenlets.
    Spawn,
    /// 100,000 greenlets parked on one event: memory, then wake-up time.
    Idle,
    /// A producer and a consumer on a bounded queue.
    Queue,
    /// A TCP echo server, loaded by the anchors' `echo_load`.
    Echo,
    /// An HTTP/1.1 server, loaded by `wrk`.
    Http,
    /// Not an anchor workload: spawning into a `Group` against plain spawns.
    GroupSpawn,
    /// Not an anchor workload: memory per idle connection, 10,000 of them on one hub.
    IdleConns,
    /// Not an anchor workload: memory per keep-alive HTTP connection, 10,000 of them.
    HttpConns,
    /// Not an anchor workload: the switch workload with the blocking monitor off and on.
    MonitorOverhead,
    /// The echo workload over TLS 1.3, against the same server on tokio-rustls.
    TlsEcho,
    /// TLS handshakes per second, against the same server on tokio-rustls.
    TlsHandshake,
    /// Queries per second of the native resolver against a local dnsmasq.
    Dns,
}

impl Workload {
    /// Every workload, in the README's order.
    pub(crate) const ALL: [Self; 13] = [
        Self::Switch,
        Self::Spawn,
        Self::Idle,
        Self::Queue,
        Self::Echo,
        Self::Http,
        Self::GroupSpawn,
        Self::IdleConns,
        Self::HttpConns,
        Self::MonitorOverhead,
        Self::TlsEcho,
        Self::TlsHandshake,
        Self::Dns,
    ];

    /// The name used on command lines and in result lines.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Switch => "switch",
            Self::Spawn => "spawn",
            Self::Idle => "idle",
            Self::Queue => "queue",
            Self::Echo => "echo",
            Self::Http => "http",
            Self::GroupSpawn => "group_spawn",
            Self::IdleConns => "idle_conns",
            Self::HttpConns => "http_conns",
            Self::MonitorOverhead => "monitor_overhead",
            Self::TlsEcho => "tls_echo",
            Self::TlsHandshake => "tls_handshake",
            Self::Dns => "dns",
        }
    }

    /// The `gevent-bench` command that runs the workload, or its server.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Self::TlsHandshake => "tls_echo",
            Self::Dns => "dns_qps",
            other => other.name(),
        }
    }

    /// Whether the workload compares our TLS server with tokio-rustls's, both loaded by
    /// `tls_load`.
    pub(crate) fn is_tls(self) -> bool {
        matches!(self, Self::TlsEcho | Self::TlsHandshake)
    }

    /// Whether the workload is a server, which needs the anchors' load generators.
    pub(crate) fn is_server(self) -> bool {
        matches!(self, Self::Echo | Self::Http)
    }

    /// Whether the workload parks 100,000 greenlets at once, each with its own stack.
    pub(crate) fn parks_many(self) -> bool {
        matches!(self, Self::Spawn | Self::Idle)
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|workload| workload.name() == name)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses the arguments after `cargo xtask`.
pub(crate) fn parse(args: &[String]) -> Result<Command, String> {
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        return Ok(Command::Help);
    }
    let Some((command, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    match command.as_str() {
        "help" => no_more(rest).map(|()| Command::Help),
        "test" => parse_test(rest).map(Command::Test),
        "bench" => parse_bench(rest).map(Command::Bench),
        other => Err(format!("unknown command '{other}'")),
    }
}

fn parse_test(args: &[String]) -> Result<Test, String> {
    let mut test = Test { quick: false, lean: false, only: None };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => test.quick = true,
            "--lean" => test.lean = true,
            "--only" => match args.next() {
                Some(text) => test.only = Some(text.clone()),
                None => return Err(String::from("--only needs the text of a step's name")),
            },
            other => return Err(format!("unexpected argument '{other}' for 'test'")),
        }
    }
    Ok(test)
}

fn parse_bench(args: &[String]) -> Result<Bench, String> {
    let mut bench = Bench {
        anchors: false,
        embedded: false,
        runs: None,
        secs: None,
        print_cmd: false,
        workloads: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, value) = match arg.as_str() {
            "--anchors" => {
                bench.anchors = true;
                continue;
            }
            "--print-cmd" => {
                bench.print_cmd = true;
                continue;
            }
            "--embedded" => {
                bench.embedded = true;
                continue;
            }
            flag @ ("--runs" | "--secs") => {
                (flag, args.next().ok_or(format!("'{flag}' needs a number"))?.as_str())
            }
            other => match other.split_once('=') {
                Some((flag @ ("--runs" | "--secs"), value)) => (flag, value),
                _ if other.starts_with('-') => {
                    return Err(format!("unexpected argument '{other}' for 'bench'"));
                }
                _ => {
                    let workload = Workload::from_name(other).ok_or_else(|| {
                        let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                        format!("unknown workload '{other}' (expected {})", names.join(", "))
                    })?;
                    if !bench.workloads.contains(&workload) {
                        bench.workloads.push(workload);
                    }
                    continue;
                }
            },
        };
        let slot = if flag == "--runs" { &mut bench.runs } else { &mut bench.secs };
        match value.parse() {
            Ok(number) if number > 0 => *slot = Some(number),
            _ => return Err(format!("'{flag}' needs a positive number, not '{value}'")),
        }
    }
    if bench.print_cmd && bench.workloads.iter().any(|workload| !workload.is_server()) {
        return Err("'--print-cmd' is for server workloads (echo, http)".into());
    }
    if bench.print_cmd && bench.embedded {
        return Err("'--print-cmd' and '--embedded' do not go together".into());
    }
    if bench.workloads.is_empty() && !bench.embedded {
        if bench.print_cmd {
            return Err(
                "'--print-cmd' needs the server workload to print it for (echo, http)".into()
            );
        }
        bench.workloads = crate::bench::DEFAULT_WORKLOADS.to_vec();
    }
    Ok(bench)
}

fn no_more(args: &[String]) -> Result<(), String> {
    match args.first() {
        None => Ok(()),
        Some(arg) => Err(format!("unexpected argument '{arg}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, String> {
        parse(&line.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn test_command() {
        assert_eq!(
            parse_str("test"),
            Ok(Command::Test(Test { quick: false, lean: false, only: None }))
        );
        assert_eq!(
            parse_str("test --quick"),
            Ok(Command::Test(Test { quick: true, lean: false, only: None }))
        );
        assert_eq!(
            parse_str("test --only firmware"),
            Ok(Command::Test(Test { quick: false, lean: false, only: Some("firmware".into()) }))
        );
        assert_eq!(
            parse_str("test --lean --quick"),
            Ok(Command::Test(Test { quick: true, lean: true, only: None }))
        );
        assert!(parse_str("test --only").is_err());
        assert!(parse_str("test --slow").is_err());
    }

    #[test]
    fn bench_defaults() {
        let bench = Bench {
            anchors: false,
            embedded: false,
            runs: None,
            secs: None,
            print_cmd: false,
            workloads: crate::bench::DEFAULT_WORKLOADS.to_vec(),
        };
        assert_eq!(parse_str("bench"), Ok(Command::Bench(bench)));
    }

    #[test]
    fn bench_flags_and_workloads() {
        let bench = Bench {
            anchors: true,
            embedded: false,
            runs: Some(5),
            secs: None,
            print_cmd: false,
            workloads: vec![Workload::Http, Workload::Switch],
        };
        assert_eq!(
            parse_str("bench http --anchors --runs 5 switch http"),
            Ok(Command::Bench(bench))
        );
        let Ok(Command::Bench(bench)) = parse_str("bench --runs=2") else { panic!() };
        assert_eq!(bench.runs, Some(2));
        let Ok(Command::Bench(bench)) = parse_str("bench echo --secs 3") else { panic!() };
        assert_eq!((bench.secs, bench.workloads), (Some(3), vec![Workload::Echo]));
        let Ok(Command::Bench(bench)) = parse_str("bench --secs=2 --print-cmd echo") else {
            panic!()
        };
        assert_eq!((bench.secs, bench.print_cmd), (Some(2), true));
    }

    #[test]
    fn embedded_alone_or_with_workloads() {
        let Ok(Command::Bench(bench)) = parse_str("bench --embedded") else { panic!() };
        assert!(bench.embedded && bench.workloads.is_empty());
        let Ok(Command::Bench(bench)) = parse_str("bench switch --embedded") else { panic!() };
        assert!(bench.embedded && bench.workloads == [Workload::Switch]);
        assert!(parse_str("bench --embedded --print-cmd echo").is_err());
    }

    #[test]
    fn tls_and_dns_workloads() {
        let Ok(Command::Bench(bench)) = parse_str("bench tls_echo tls_handshake dns --runs 2")
        else {
            panic!()
        };
        assert_eq!(
            (bench.runs, bench.workloads),
            (Some(2), vec![Workload::TlsEcho, Workload::TlsHandshake, Workload::Dns])
        );
        assert!(Workload::TlsEcho.is_tls() && Workload::TlsHandshake.is_tls());
        assert!(!Workload::Echo.is_tls() && !Workload::Dns.is_tls());
        assert_eq!(Workload::TlsHandshake.command(), "tls_echo");
        assert_eq!(Workload::Dns.command(), "dns_qps");
        assert_eq!(Workload::Switch.command(), "switch");
        assert!(!crate::bench::DEFAULT_WORKLOADS.iter().any(|w| w.is_tls() || *w == Workload::Dns));
        assert!(parse_str("bench --print-cmd tls_echo").is_err());
    }

    #[test]
    fn bad_bench_arguments() {
        let unknown = parse_str("bench swtich").unwrap_err();
        assert!(unknown.contains("unknown workload 'swtich'"), "{unknown}");
        assert!(
            unknown.contains(
                "switch, spawn, idle, queue, echo, http, group_spawn, idle_conns, http_conns, \
                 monitor_overhead, tls_echo, tls_handshake, dns"
            ),
            "{unknown}"
        );
        assert!(parse_str("bench --runs").is_err());
        assert!(parse_str("bench --runs 0").is_err());
        assert!(parse_str("bench --runs x").is_err());
        assert!(parse_str("bench --fast").is_err());
        assert!(parse_str("bench --secs 0").is_err());
        assert!(parse_str("bench --secs=").is_err());
        assert!(parse_str("bench --print-cmd").is_err());
        assert!(parse_str("bench --print-cmd echo switch").is_err());
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parse_str(""), Err("no command given".into()));
        assert_eq!(parse_str("help"), Ok(Command::Help));
        assert_eq!(parse_str("bench --help"), Ok(Command::Help));
        assert!(parse_str("frobnicate").is_err());
    }
}
