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
        let second = Location::caller();
        heartbeat.name(0x1_0000_0001, FIRST);
        heartbeat.publish(0x1_0000_0001, first);
        let hub = {
            let heartbeat = heartbeat.clone();
            thread::spawn(move || {
                // A greenlet whose id takes the first one's name slot.
                let id = 0x1_0000_0001 + NAME_SLOTS as u64;
                heartbeat.name(id, SECOND);
                heartbeat.publish(id, second);
            })
        };
        let sample = heartbeat.sample();
        if let Some(running) = sample.running {
            let expected = match sample.switches {
                1 => (0x1_0000_0001, first),
                2 => (0x1_0000_0001 + NAME_SLOTS as u64, second),
                n => panic!("{n} switch-ins"),
            };
            assert_eq!((running.id, running.spawned_at), expected);
            // A name is the running greenlet's or none: never another's, never torn.
            let own = if running.id == 0x1_0000_0001 { FIRST } else { SECOND };
            assert!(running.name.is_none_or(|name| name == own), "{:?}", running.name);
        }
        hub.join().unwrap();
    });
}
