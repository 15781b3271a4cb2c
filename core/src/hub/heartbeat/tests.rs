//! The blocking check on the simulated hub: what an embedded tick handler would see.

use super::*;
use crate::sim;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;

const BUDGET: Duration = Duration::from_millis(100);

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot switch stacks")]
fn a_greenlet_that_does_not_switch_is_reported_once_per_episode_by_name_and_spawn_site() {
    sim::run(|| {
        let heartbeat = Arc::new(Heartbeat::new());
        attach(heartbeat.clone()).unwrap();
        assert_eq!(attach(Arc::new(Heartbeat::new())), Err(AlreadyAttached::new()));
        let reports = alloc::rc::Rc::new(RefCell::new(Vec::new()));
        let seen = reports.clone();
        let beat = heartbeat.clone();
        let spawned_here = Location::caller().line() + 1;
        let busy = crate::Builder::new().name("busy").spawn(move || {
            // The tick handler's view while this greenlet computes without switching.
            let mut check = BlockingCheck::new(at(0));
            let mut tick = |ms| seen.borrow_mut().push(check.check(&beat, at(ms), BUDGET));
            tick(0);
            tick(50);
            tick(100);
            tick(150);
            crate::yield_now().unwrap();
            tick(200);
            tick(300);
        });
        busy.join().unwrap();
        let reports = reports.borrow();
        assert_eq!(reports[..2], [None, None]);
        let blocked = reports[2].expect("reported once the budget passed");
        assert_eq!(blocked.running.id, busy.id());
        assert_eq!(blocked.running.name, Some("busy"));
        assert_eq!(blocked.running.spawned_at.file(), file!());
        assert_eq!(blocked.running.spawned_at.line(), spawned_here);
        assert_eq!(blocked.blocked_for, BUDGET);
        assert_eq!(reports[3], None, "one report per episode");
        // After the yield the hub switched: a new episode, reported again once blocked.
        assert_eq!(reports[4], None);
        assert_eq!(reports[5].map(|b| b.running.id), Some(busy.id()));
    });
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot switch stacks")]
fn the_main_greenlet_is_published_when_attached_and_an_idle_hub_is_not_blocked() {
    sim::run(|| {
        let heartbeat = Arc::new(Heartbeat::new());
        attach(heartbeat.clone()).unwrap();
        let running = heartbeat.sample().running.unwrap();
        assert_eq!((running.id, running.name), (0, Some("main")));
        let unnamed = crate::spawn(|| ());
        unnamed.join().unwrap();
        heartbeat.set_idle(true);
        let mut check = BlockingCheck::new(at(0));
        assert_eq!(check.check(&heartbeat, at(0), BUDGET), None);
        assert_eq!(check.check(&heartbeat, at(500), BUDGET), None);
        heartbeat.set_idle(false);
        // Blocked from the last check that saw it idle.
        assert_eq!(check.check(&heartbeat, at(550), BUDGET), None);
        let blocked = check.check(&heartbeat, at(600), BUDGET).unwrap();
        assert_eq!((blocked.running.id, blocked.running.name), (0, Some("main")));
    });
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot switch stacks")]
fn an_unnamed_greenlet_is_published_without_a_name() {
    sim::run(|| {
        let heartbeat = Arc::new(Heartbeat::new());
        attach(heartbeat.clone()).unwrap();
        let beat = heartbeat.clone();
        let g = crate::spawn(move || beat.sample().running.unwrap());
        let running = g.get().unwrap();
        assert_eq!((running.id, running.name), (g.id(), None));
        assert_eq!(
            alloc::format!("{running}"),
            alloc::format!("greenlet #{} (spawned at {})", g.id(), running.spawned_at)
        );
    });
}

#[test]
fn a_published_switch_reads_back_whole_and_the_sequence_counts_switches() {
    static NAME: &str = "worker";
    let heartbeat = Heartbeat::new();
    assert_eq!(heartbeat.sample().running, None, "nothing published yet");
    let here = Location::caller();
    heartbeat.publish(u64::MAX - 1, here);
    heartbeat.name(1 << 40 | 7, NAME);
    heartbeat.publish(1 << 40 | 7, here);
    let sample = heartbeat.sample();
    assert_eq!(sample.switches, 2);
    assert_eq!(
        sample.running,
        Some(Running { id: 1 << 40 | 7, name: Some(NAME), spawned_at: here })
    );
    heartbeat.publish(3, here);
    assert_eq!(heartbeat.sample().running.map(|r| (r.id, r.name)), Some((3, None)));
    // A later greenlet with a name in the same slot: the first one's name is forgotten.
    heartbeat.name((1 << 40 | 7) + NAME_SLOTS as u64, "other");
    heartbeat.publish(1 << 40 | 7, here);
    assert_eq!(heartbeat.sample().running.map(|r| r.name), Some(None));
}

#[test]
fn a_frame_slot_hands_its_buffer_over_one_side_at_a_time() {
    use capture::{FrameSlot, MAX_FRAMES};
    let slot = FrameSlot::new();
    let mut out = [0; MAX_FRAMES];
    let request = slot.arm(1).unwrap();
    assert!(slot.arm(1).is_none(), "armed already");
    slot.fill(2, |push| {
        push(9);
    });
    let request =
        slot.collect(request, &mut out).expect_err("another thread's handler wrote nothing");
    slot.fill(1, |push| while push(5) {});
    assert_eq!(slot.collect(request, &mut out).ok(), Some(MAX_FRAMES), "the buffer caps the walk");
    assert!(out.iter().all(|&ip| ip == 5));
    let request = slot.arm(1).unwrap();
    slot.withdraw(request);
    slot.fill(1, |push| {
        push(9);
    });
    let request = slot.arm(1).expect("a withdrawn request leaves the slot idle");
    assert!(slot.collect(request, &mut out).is_err());
}
