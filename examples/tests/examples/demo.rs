//! The README demo runs to its end and prints every scene.

use super::common::{example, ok, output};

#[test]
fn demo_prints_every_scene() {
    let stdout = ok(output(&mut example("demo")));
    for scene in [
        "] spawned 10000 greenlets sleeping 1-100 ms each\n",
        "] all 10000 woke: 505 s of sleeping in total",
        "] Timeout: waiting for the download gave up",
        "] kill: greenlet #",
        "] joinall(timeout=50ms): finished in time: [\"racer-20ms\", \"racer-40ms\"]\n",
        "] pool of 4: 20 jobs of 25 ms done in ",
        "] loopback: 300 clients made 30000 echo round trips in ",
        "] http: 50 greenlets made 400 keep-alive requests (400 answered 200) in ",
        "] LoopExit: this operation would block forever",
        "] done\n",
    ] {
        assert!(stdout.contains(scene), "no {scene:?} in {stdout}");
    }
}
