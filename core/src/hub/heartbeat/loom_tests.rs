//! The heartbeat's sequence lock under loom: a reader racing the hub's switch-ins gets either
//! nothing or the fields of one switch-in, never a mix. Run with `RUSTFLAGS="--cfg loom"
//! CARGO_TARGET_DIR=target/loom cargo test -p gevent-core --features std --lib loom`.

use super::*;
use loom::sync::Arc;
use loom::thread;

static FIRST: &str = "first";
static SECOND: &str = "second-greenlet";

#[test]
fn loom_a_sample_racing_switches_sees_one_switch_in_whole() {
    loom::model(|| {
        let heartbeat = Arc::new(Heartbeat::new());
        let first = Location::caller();
        heartbeat.publish(0x1_0000_0001, Some(FIRST), first);
        let hub = {
            let heartbeat = heartbeat.clone();
            thread::spawn(move || {
                let second = Location::caller();
                heartbeat.publish(0x2_0000_0002, Some(SECOND), second);
            })
        };
        let sample = heartbeat.sample();
        if let Some(running) = sample.running {
            let expected = match sample.switches {
                1 => (0x1_0000_0001, Some(FIRST)),
                2 => (0x2_0000_0002, Some(SECOND)),
                n => panic!("{n} switch-ins"),
            };
            assert_eq!((running.id, running.name), expected);
        }
        hub.join().unwrap();
    });
}
