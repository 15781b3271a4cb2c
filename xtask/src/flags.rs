//! Command-line parsing, by hand: the commands are few and their flags simple.

use core::fmt;

/// What `cargo xtask --help` prints, and what a bad command line prints after its error.
pub(crate) const HELP: &str = "\
Usage: cargo xtask <COMMAND>

Commands:
  test [--quick]
      Run the whole test matrix: fmt, clippy, the tests of each package, docs, miri,
      no_std and cross-target builds, the demo. Every step runs even after a failure;
      a summary follows, and the exit status is non-zero if any step failed.
      --quick    skip miri, the release-mode tests and the cross-target steps

  bench [--anchors] [--runs N] [WORKLOAD...]
      Build gevent-bench in release mode and run the workloads of shared/anchors/README.md
      (switch spawn idle queue echo http), and ours alone: group_spawn (spawning into a
      Group against plain spawns). By default: switch spawn idle queue group_spawn.
      --anchors  run them through the anchors' run.sh, next to gevent, tokio and may,
                 and print how we compare (anchors folder: $ANCHORS_DIR, or
                 ../shared/anchors next to the workspace); echo and http need it
      --runs N   runs of each workload (with --anchors the median is kept; default 3,
                 or 1 without --anchors)

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
}

/// `cargo xtask bench`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bench {
    /// Run through the anchors' `run.sh`, next to the anchor implementations.
    pub(crate) anchors: bool,
    /// `--runs N`, if given.
    pub(crate) runs: Option<u32>,
    /// The workloads, in the order given, without repeats; never empty.
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
}

impl Workload {
    /// Every workload, in the README's order.
    pub(crate) const ALL: [Self; 7] = [
        Self::Switch,
        Self::Spawn,
        Self::Idle,
        Self::Queue,
        Self::Echo,
        Self::Http,
        Self::GroupSpawn,
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
        }
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
    let mut test = Test { quick: false };
    for arg in args {
        match arg.as_str() {
            "--quick" => test.quick = true,
            other => return Err(format!("unexpected argument '{other}' for 'test'")),
        }
    }
    Ok(test)
}

fn parse_bench(args: &[String]) -> Result<Bench, String> {
    let mut bench = Bench { anchors: false, runs: None, workloads: Vec::new() };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let runs = match arg.as_str() {
            "--anchors" => {
                bench.anchors = true;
                continue;
            }
            "--runs" => args.next().ok_or("'--runs' needs a number")?.as_str(),
            other => match other.strip_prefix("--runs=") {
                Some(runs) => runs,
                None if other.starts_with('-') => {
                    return Err(format!("unexpected argument '{other}' for 'bench'"));
                }
                None => {
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
        match runs.parse() {
            Ok(runs) if runs > 0 => bench.runs = Some(runs),
            _ => return Err(format!("'--runs' needs a positive number, not '{runs}'")),
        }
    }
    if bench.workloads.is_empty() {
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
        assert_eq!(parse_str("test"), Ok(Command::Test(Test { quick: false })));
        assert_eq!(parse_str("test --quick"), Ok(Command::Test(Test { quick: true })));
        assert!(parse_str("test --slow").is_err());
    }

    #[test]
    fn bench_defaults() {
        let bench = Bench {
            anchors: false,
            runs: None,
            workloads: crate::bench::DEFAULT_WORKLOADS.to_vec(),
        };
        assert_eq!(parse_str("bench"), Ok(Command::Bench(bench)));
    }

    #[test]
    fn bench_flags_and_workloads() {
        let bench = Bench {
            anchors: true,
            runs: Some(5),
            workloads: vec![Workload::Http, Workload::Switch],
        };
        assert_eq!(
            parse_str("bench http --anchors --runs 5 switch http"),
            Ok(Command::Bench(bench))
        );
        let Ok(Command::Bench(bench)) = parse_str("bench --runs=2") else { panic!() };
        assert_eq!(bench.runs, Some(2));
    }

    #[test]
    fn bad_bench_arguments() {
        let unknown = parse_str("bench swtich").unwrap_err();
        assert!(unknown.contains("unknown workload 'swtich'"), "{unknown}");
        assert!(
            unknown.contains("switch, spawn, idle, queue, echo, http, group_spawn"),
            "{unknown}"
        );
        assert!(parse_str("bench --runs").is_err());
        assert!(parse_str("bench --runs 0").is_err());
        assert!(parse_str("bench --runs x").is_err());
        assert!(parse_str("bench --fast").is_err());
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parse_str(""), Err("no command given".into()));
        assert_eq!(parse_str("help"), Ok(Command::Help));
        assert_eq!(parse_str("bench --help"), Ok(Command::Help));
        assert!(parse_str("frobnicate").is_err());
    }
}
