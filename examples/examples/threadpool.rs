//! gevent's `threadpool.py`: blocking jobs run on a `ThreadPool` while a greenlet keeps
//! ticking on the hub. Four jobs that each block their thread for 200 ms finish together in
//! about 200 ms on a pool of four, and the ticker prints all along.
//!
//! Run with `cargo run -p gevent-examples --example threadpool`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::threadpool::ThreadPool;

fn main() {
    gevent::run(|| {
        let started = Instant::now();
        let ticks = Rc::new(Cell::new(0u32));
        let ticker = gevent::spawn({
            let ticks = ticks.clone();
            move || -> gevent::Result<()> {
                loop {
                    gevent::sleep(Duration::from_millis(50))?;
                    ticks.set(ticks.get() + 1);
                    println!("tick {} at {:?}", ticks.get(), started.elapsed());
                }
            }
        });

        let pool = ThreadPool::new(4);
        let jobs: Vec<_> = (1..=4u64)
            .map(|n| {
                pool.spawn(move || {
                    // A call that blocks its thread: a C library, a hash, a slow disk.
                    std::thread::sleep(Duration::from_millis(200));
                    (1..=n * 1_000_000).fold(0u64, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
                })
            })
            .collect();
        for (n, job) in jobs.iter().enumerate() {
            let hash = job.get().expect("the job does not panic");
            println!("job {} done at {:?}: {hash:#x}", n + 1, started.elapsed());
        }
        ticker.kill().expect("the ticker stops");
        println!(
            "4 jobs of 200 ms each took {:?} on 4 threads; the hub ticked {} times meanwhile",
            started.elapsed(),
            ticks.get()
        );
    });
}
