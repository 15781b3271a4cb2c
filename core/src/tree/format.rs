//! How a [`GreenletTree`] prints: an indented tree, as gevent's `format_run_info` does.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::{GreenletInfo, GreenletState, GreenletTree, WaitReason};
use crate::time::Instant;

impl fmt::Display for GreenletTree {
    /// ```text
    /// hub: 3 greenlets
    /// +-- #0 'main' parked: the end of greenlet #1
    ///     +-- #1 'server' parked: fd 5 to be readable; spawned at src/main.rs:9:5; stack 6.5 KiB used of 256 KiB
    ///         +-- #2 'Greenlet-2' parked: a sleep until 1.000s from now; spawned at src/main.rs:12:9; ...
    /// +-- #7 'worker' (its parent #4 finished) runnable; spawned at src/main.rs:20:5; ...
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.greenlets.len();
        writeln!(f, "hub: {count} greenlet{}", if count == 1 { "" } else { "s" })?;
        // Children by parent, in id order (the greenlets are sorted by id after main).
        let mut children: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut roots = Vec::new();
        for (i, g) in self.greenlets.iter().enumerate() {
            match g.parent {
                Some(parent) if self.get(parent).is_some() => {
                    children.entry(parent).or_default().push(i)
                }
                _ => roots.push(i),
            }
        }
        // Depth first, without recursion: a chain of spawns can be as long as the hub is big.
        let mut pending: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
        while let Some((i, depth)) = pending.pop() {
            let g = &self.greenlets[i];
            for _ in 0..depth {
                f.write_str("    ")?;
            }
            f.write_str("+-- ")?;
            self.line(f, g)?;
            f.write_str("\n")?;
            if let Some(kids) = children.get(&g.id) {
                pending.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
            }
        }
        Ok(())
    }
}

impl GreenletTree {
    fn line(&self, f: &mut fmt::Formatter<'_>, g: &GreenletInfo) -> fmt::Result {
        write!(f, "#{} '{}'", g.id, g.name)?;
        if let Some(parent) = g.parent {
            if self.get(parent).is_none() {
                write!(f, " (its parent #{parent} finished)")?;
            }
        }
        let state = match g.state {
            GreenletState::Scheduled => "scheduled to start",
            GreenletState::Runnable => "runnable",
            GreenletState::Running => "running",
            GreenletState::Parked => "parked",
            GreenletState::Finished => "finished",
        };
        write!(f, " {state}")?;
        if g.waits_on != WaitReason::Nothing {
            f.write_str(": ")?;
            describe_wait(f, g.waits_on, self.now, |id| self.get(id).map(|g| g.name.as_str()))?;
        }
        if let Some(at) = g.spawned_at {
            write!(f, "; spawned at {at}")?;
        }
        match (g.stack_high_water, g.stack_size) {
            (Some(used), Some(size)) => {
                write!(f, "; stack {} used of {}", Bytes(used), Bytes(size))?;
            }
            (None, Some(size)) => write!(f, "; stack of {}", Bytes(size))?,
            _ => {}
        }
        Ok(())
    }
}

/// Says what a greenlet waits on, naming joined greenlets that `name_of` knows.
fn describe_wait<'a>(
    f: &mut fmt::Formatter<'_>,
    reason: WaitReason,
    now: Instant,
    name_of: impl Fn(u64) -> Option<&'a str>,
) -> fmt::Result {
    match reason {
        WaitReason::Nothing => f.write_str("nothing"),
        WaitReason::Sleep { deadline } if deadline >= now => {
            let left = deadline.saturating_duration_since(now);
            write!(f, "a sleep until {} from now", Secs(left))
        }
        WaitReason::Sleep { deadline } => {
            let late = now.saturating_duration_since(deadline);
            write!(f, "a sleep that ended {} ago (to be woken)", Secs(late))
        }
        WaitReason::Idle => f.write_str("the hub becoming idle"),
        WaitReason::Join { id } => match name_of(id) {
            Some(name) => write!(f, "the end of greenlet #{id} '{name}'"),
            None => write!(f, "the end of greenlet #{id}"),
        },
        WaitReason::JoinAll => f.write_str("the end of several greenlets (joinall)"),
        WaitReason::Event => f.write_str("an event to be set"),
        WaitReason::Io { source, interest } => {
            let what = if interest.is_readable() { "readable" } else { "writable" };
            write!(f, "fd {source} to be {what}")
        }
        WaitReason::Everything => f.write_str("every other greenlet to finish (wait)"),
        WaitReason::Other(what) => f.write_str(what),
    }
}

/// A duration in seconds with millisecond precision: `1.500s`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0.as_secs(), self.0.subsec_millis())
    }
}

/// A size in bytes, in KiB above 1 KiB: `6.5 KiB`.
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1024 {
            write!(f, "{} B", self.0)
        } else {
            let tenths = self.0 * 10 / 1024;
            write!(f, "{}.{} KiB", tenths / 10, tenths % 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Interest;
    use alloc::string::{String, ToString};
    use alloc::vec;

    fn info(
        id: u64,
        parent: Option<u64>,
        state: GreenletState,
        waits_on: WaitReason,
    ) -> GreenletInfo {
        GreenletInfo {
            id,
            name: if id == 0 { String::from("main") } else { alloc::format!("g{id}") },
            parent,
            state,
            waits_on,
            spawned_at: parent.map(|_| core::panic::Location::caller()),
            stack_size: parent.map(|_| 8192),
            stack_high_water: parent.map(|_| 1536),
        }
    }

    #[test]
    fn children_print_under_parents_and_orphans_under_the_hub() {
        let tree = GreenletTree {
            now: Instant::from_nanos(1_000_000_000),
            greenlets: vec![
                info(0, None, GreenletState::Parked, WaitReason::Join { id: 1 }),
                info(
                    1,
                    Some(0),
                    GreenletState::Parked,
                    WaitReason::Io { source: 5, interest: Interest::READABLE },
                ),
                info(
                    2,
                    Some(1),
                    GreenletState::Parked,
                    WaitReason::Sleep { deadline: Instant::from_nanos(2_500_000_000) },
                ),
                info(3, Some(9), GreenletState::Runnable, WaitReason::Nothing),
            ],
        };
        let text = tree.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "hub: 4 greenlets");
        assert_eq!(lines[1], "+-- #0 'main' parked: the end of greenlet #1 'g1'");
        assert!(lines[2].starts_with("    +-- #1 'g1' parked: fd 5 to be readable; spawned at "));
        assert!(lines[2].ends_with("; stack 1.5 KiB used of 8.0 KiB"), "{}", lines[2]);
        assert!(lines[3].starts_with("        +-- #2 'g2' parked: a sleep until 1.500s from now"));
        assert!(lines[4].starts_with("+-- #3 'g3' (its parent #9 finished) runnable; spawned"));
    }
}
