//! The thread pool against the real hub: results come back while other greenlets run, `max`
//! bounds concurrency, panics come back as errors, waits can be cut short, and a dropped handle
//! loses nothing. Jobs are held and released with barriers and channels, never with sleeps; a
//! hang is caught by a generous bounded wait.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use gevent::threadpool::{JOB_NAME, ThreadPool, ThreadResult, spawn_blocking};
use gevent::{Error, FailureKind, Interrupted, Timeout, sleep, spawn, yield_now};

/// Far longer than any of these jobs takes; reached only if a result is lost.
const BACKSTOP: Duration = Duration::from_secs(60);

/// Waits on `result` with the backstop, failing the test instead of hanging.
fn get_within_backstop<T>(result: &ThreadResult<T>) -> Result<T, Error> {
    match result.get_timeout(BACKSTOP) {
        Err(Error::NotReady) => panic!("job #{} never came back", result.id()),
        other => other,
    }
}

#[test]
fn a_result_comes_back_while_other_greenlets_keep_running() {
    gevent::run(|| {
        let pool = ThreadPool::new(2);
        let ticks = Rc::new(Cell::new(0u32));
        let counted = ticks.clone();
        let _ticker = spawn(move || -> gevent::Result<()> {
            loop {
                sleep(Duration::from_millis(1))?;
                counted.set(counted.get() + 1);
            }
        });
        // The job finishes only once the ticker has ticked a few times: the hub kept running
        // greenlets while the main one waited on the pool.
        let (release, held) = mpsc::channel::<()>();
        let job = pool.spawn(move || {
            held.recv_timeout(BACKSTOP).expect("released by the ticker side");
            "done"
        });
        let releaser = spawn({
            let ticks = ticks.clone();
            move || -> gevent::Result<()> {
                while ticks.get() < 3 {
                    yield_now()?;
                }
                release.send(()).expect("the job waits");
                Ok(())
            }
        });
        assert!(!job.ready());
        assert_eq!(get_within_backstop(&job), Ok("done"));
        assert!(ticks.get() >= 3);
        assert!(job.ready());
        assert_eq!(job.get(), Err(Error::Taken), "the value was moved out");
        releaser.get().unwrap();
    });
}

#[test]
fn max_bounds_how_many_jobs_run_at_once() {
    const MAX: usize = 3;
    const JOBS: usize = 12;
    gevent::run(|| {
        let pool = ThreadPool::new(MAX);
        assert_eq!(pool.max(), MAX);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        // Every wave of MAX jobs meets at the barrier: had the pool run more at once, a
        // barrier of MAX would let a wave through early; had it run fewer, nothing would pass.
        let barrier = Arc::new(Barrier::new(MAX));
        let jobs: Vec<_> = (0..JOBS)
            .map(|i| {
                let (running, peak, barrier) = (running.clone(), peak.clone(), barrier.clone());
                pool.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    barrier.wait();
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        for (i, job) in jobs.iter().enumerate() {
            assert_eq!(get_within_backstop(job), Ok(i));
        }
        assert_eq!(peak.load(Ordering::SeqCst), MAX, "at most MAX at once, and MAX reached");
        assert!(pool.threads() <= MAX);
    });
}

#[test]
fn a_panic_in_a_job_comes_back_as_an_error_and_the_pool_keeps_working() {
    gevent::run(|| {
        let pool = ThreadPool::new(1);
        let line = line!() + 1;
        let bad = pool.spawn(|| -> u32 { panic!("the job broke") });
        match get_within_backstop(&bad) {
            Err(Error::Failed(e)) => {
                assert_eq!(e.kind, FailureKind::Panicked("the job broke".into()));
                assert_eq!(e.id, bad.id());
                assert_eq!(e.name, JOB_NAME);
                assert_eq!((e.spawned_at.file(), e.spawned_at.line()), (file!(), line));
                assert!(e.to_string().contains("panicked: the job broke"), "{e}");
            }
            other => panic!("expected the panic back, got {other:?}"),
        }
        assert!(matches!(bad.get(), Err(Error::Failed(_))), "a failure is reported every time");
        // The one thread survived the panic and runs the next job.
        let good = pool.spawn(|| 7);
        assert_eq!(get_within_backstop(&good), Ok(7));
        assert_eq!(pool.threads(), 1);
    });
}

#[test]
fn get_timeout_expires_and_the_value_is_still_there_afterwards() {
    gevent::run(|| {
        let pool = ThreadPool::new(1);
        let (release, held) = mpsc::channel::<()>();
        let job = pool.spawn(move || {
            held.recv_timeout(BACKSTOP).expect("released by the test");
            5
        });
        assert_eq!(job.get_timeout(Duration::from_millis(20)), Err(Error::NotReady));
        assert_eq!(job.join_timeout(Duration::from_millis(1)), Ok(false));
        assert_eq!(job.try_get(), Err(Error::NotReady));
        release.send(()).unwrap();
        assert_eq!(get_within_backstop(&job), Ok(5));
    });
}

#[test]
fn a_timeout_or_a_kill_interrupts_the_waiting_greenlet_only() {
    gevent::run(|| {
        let pool = ThreadPool::new(1);
        let (release, held) = mpsc::channel::<()>();
        let job = Rc::new(pool.spawn(move || {
            held.recv_timeout(BACKSTOP).expect("released by the test");
            "late"
        }));

        let timeout = Timeout::start(Duration::from_millis(10));
        assert_eq!(job.get(), Err(Error::Interrupted(Interrupted::TimedOut(timeout.id()))));
        drop(timeout);

        let waiting = job.clone();
        let waiter = spawn(move || waiting.get());
        yield_now().unwrap(); // let it park on the result
        waiter.kill().unwrap();
        assert!(waiter.killed());

        release.send(()).unwrap();
        assert_eq!(get_within_backstop(&job), Ok("late"), "the interrupted waits took nothing");
    });
}

#[test]
fn a_thousand_jobs_all_complete() {
    gevent::run(|| {
        let pool = ThreadPool::new(8);
        let jobs: Vec<_> = (0..1000u64).map(|i| pool.spawn(move || i * i)).collect();
        let sum: u64 = jobs.iter().map(|j| get_within_backstop(j).unwrap()).sum();
        assert_eq!(sum, (0..1000u64).map(|i| i * i).sum());
    });
}

/// Counts its drops, to see that a result nobody waits for is dropped, once.
struct Witness(Arc<AtomicUsize>);

impl Drop for Witness {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_handle_loses_nothing_and_its_result_is_dropped_on_arrival() {
    gevent::run(|| {
        let pool = ThreadPool::new(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let (release, held) = mpsc::channel::<()>();
        let witness = Witness(drops.clone());
        let abandoned = pool.spawn(move || {
            held.recv_timeout(BACKSTOP).expect("released by the test");
            witness
        });
        drop(abandoned);
        release.send(()).unwrap();
        // One thread, first in first out: once this job's result is back, the abandoned one's
        // has been posted before it, and posted jobs run in order.
        let after = pool.spawn(|| ());
        assert_eq!(get_within_backstop(&after), Ok(()));
        let deadline = Instant::now() + BACKSTOP;
        while drops.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            yield_now().unwrap(); // let the posted deliveries' greenlets run
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the abandoned result was dropped once");
    });
}

#[test]
fn the_main_greenlet_waiting_only_on_the_pool_is_not_told_loop_exit() {
    gevent::run(|| {
        let pool = ThreadPool::new(1);
        let (release, held) = mpsc::channel::<()>();
        let job = pool.spawn(move || {
            held.recv_timeout(BACKSTOP).expect("released by the releaser thread");
            11
        });
        // Released from a plain thread after the main greenlet is (most likely) parked with
        // nothing else alive: no greenlet, no timer, only the pool's promise.
        let releaser = std::thread::spawn(move || release.send(()).unwrap());
        assert_eq!(job.get(), Ok(11));
        releaser.join().unwrap();
    });
}

#[test]
fn spawn_blocking_runs_on_the_default_pool() {
    gevent::run(|| {
        let here = std::thread::current().id();
        let job = spawn_blocking(move || std::thread::current().id() != here);
        assert_eq!(get_within_backstop(&job), Ok(true), "the job ran on another thread");
        assert!(gevent::threadpool::default_pool().max() >= 4);
    });
}

#[test]
fn idle_threads_retire_and_new_ones_start_on_demand() {
    gevent::run(|| {
        let pool = ThreadPool::with_idle_timeout(2, Duration::from_millis(1));
        assert_eq!(pool.threads(), 0, "no thread before the first job");
        assert_eq!(get_within_backstop(&pool.spawn(|| 1)), Ok(1));
        let deadline = Instant::now() + BACKSTOP;
        while pool.threads() > 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(pool.threads(), 0, "the idle thread retired");
        assert_eq!(get_within_backstop(&pool.spawn(|| 2)), Ok(2), "a new thread took the job");
    });
}

/// A thread that gives up waiting for work must count itself out in the same critical section
/// in which it sees the queue empty: a job queued between the two would otherwise find the
/// pool full (of a thread that is leaving), start no thread, and wait forever. An idle timeout
/// of zero retires the only thread whenever the queue empties, while hubs on four threads
/// queue jobs at any moment.
#[test]
fn a_job_queued_while_the_only_thread_retires_still_runs() {
    let pool = Arc::new(ThreadPool::with_idle_timeout(1, Duration::ZERO));
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                gevent::run(|| {
                    for i in 0..5000u32 {
                        assert_eq!(get_within_backstop(&pool.spawn(move || i)), Ok(i));
                    }
                })
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
}
