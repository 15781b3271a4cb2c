//! The `LoopExit` report: what the main greenlet waits on, and what every other greenlet does.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Hub;
use crate::error::{LoopExit, ParkedGreenlet};
use crate::greenlet::task::{State, Task, WaitKind};

/// Builds the wait-for picture of a hub whose main greenlet would wait forever.
///
/// The live greenlets are listed once and sorted by id, so that naming the greenlet a joiner
/// waits for is a binary search: O(n log n) for n live greenlets, where looking each one up in
/// a fresh list of all of them took O(n²) (minutes for 100,000 greenlets parked in joins).
pub(super) fn loop_exit(hub: &Hub) -> LoopExit {
    let live = hub.live_greenlets();
    let mut by_id: Vec<&Task> = live.iter().map(|t| t.task()).collect();
    by_id.sort_unstable_by_key(|task| task.id);
    let parked = live
        .iter()
        .map(|t| t.task())
        .filter(|task| task.state.get() == State::Parked)
        .map(|task| ParkedGreenlet {
            id: task.id,
            name: String::from(task.name()),
            spawned_at: task.spawned_at,
            waits_on: describe_wait(hub, &by_id, task.waits_on.get()),
        })
        .collect();
    let main_waits_on = describe_wait(hub, &by_id, hub.main.task().waits_on.get());
    LoopExit { main_waits_on, parked }
}

/// Says in words what a greenlet waits on; `by_id` is the live greenlets sorted by id.
fn describe_wait(hub: &Hub, by_id: &[&Task], kind: WaitKind) -> String {
    match kind {
        WaitKind::Nothing => String::from("nothing"),
        WaitKind::Sleep(_) => String::from("a sleep"),
        WaitKind::Idle => String::from("the hub becoming idle"),
        WaitKind::Join(id) if id == hub.main.task().id => {
            String::from("the end of the main greenlet 'main'")
        }
        WaitKind::Join(id) => match by_id.binary_search_by_key(&id, |task| task.id) {
            Ok(i) => format!("the end of {}", by_id[i].describe()),
            Err(_) => format!("the end of greenlet #{id}"),
        },
        WaitKind::Event => String::from("an event to be set"),
        WaitKind::Other(what) => String::from(*what),
        WaitKind::JoinAll => String::from("the end of several greenlets (joinall)"),
        WaitKind::Everything => String::from("every other greenlet to finish (wait)"),
        WaitKind::Io { source, readable: true } => format!("I/O source {source} to be readable"),
        WaitKind::Io { source, readable: false } => format!("I/O source {source} to be writable"),
    }
}
