//! The `LoopExit` report: what the main greenlet waits on, and what every other greenlet does.

use alloc::format;
use alloc::string::String;

use super::Hub;
use crate::error::{LoopExit, ParkedGreenlet};
use crate::greenlet::task::{State, WaitKind};

/// Builds the wait-for picture of a hub whose main greenlet would wait forever.
pub(super) fn loop_exit(hub: &Hub) -> LoopExit {
    let parked = hub
        .live_greenlets()
        .iter()
        .map(|t| t.task())
        .filter(|task| task.state.get() == State::Parked)
        .map(|task| ParkedGreenlet {
            id: task.id,
            name: String::from(task.name()),
            spawned_at: task.spawned_at,
            waits_on: describe_wait(hub, task.waits_on.get()),
        })
        .collect();
    LoopExit { main_waits_on: describe_wait(hub, hub.main.task().waits_on.get()), parked }
}

/// Says in words what a greenlet waits on.
pub(crate) fn describe_wait(hub: &Hub, kind: WaitKind) -> String {
    match kind {
        WaitKind::Nothing => String::from("nothing"),
        WaitKind::Sleep => String::from("a sleep"),
        WaitKind::Idle => String::from("the hub becoming idle"),
        WaitKind::Join(id) if id == hub.main.task().id => {
            String::from("the end of the main greenlet 'main'")
        }
        WaitKind::Join(id) => {
            let target = hub.live_greenlets().into_iter().find(|t| t.task().id == id);
            match target {
                Some(t) => format!("the end of {}", t.task().describe()),
                None => format!("the end of greenlet #{id}"),
            }
        }
        WaitKind::Event => String::from("an event to be set"),
        WaitKind::Other(what) => String::from(what),
        WaitKind::JoinAll => String::from("the end of several greenlets (joinall)"),
        WaitKind::Everything => String::from("every other greenlet to finish (wait)"),
        WaitKind::Io { source, readable: true } => format!("I/O source {source} to be readable"),
        WaitKind::Io { source, readable: false } => format!("I/O source {source} to be writable"),
    }
}
