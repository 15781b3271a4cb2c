//! The waiting part of a queue's get: in line as a [`Taker`], until a put delivers an item
//! into its slot (see [`crate::sync::takers`]), the queue closes, or the deadline passes.

use core::cell::{RefCell, RefMut};
use core::marker::PhantomData;
use core::pin::{Pin, pin};

use super::{GenericQueue, GetError, QueueOrder, State};
use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::WaitKind;
use crate::hub::{QueuedTask, hub};
use crate::sync::line::{InLine, LineIn, Place};
use crate::sync::takers::Taker;
use crate::time::Instant;

/// What a getter waits on, for `LoopExit` reports and greenlet dumps.
const KIND: WaitKind = WaitKind::Other(&"an item in an empty queue (a get)");

/// Waits in line for an item; `s` is the borrow of `state` that found the queue empty and
/// open (one borrow, not two, on the way into the wait). Out of line: the get that finds an
/// item stays small.
#[inline(never)]
#[allow(unsafe_code)] // see the SAFETY comments
pub(super) fn wait_for_item<'a, T, O: QueueOrder<T>>(
    state: &'a RefCell<State<T, O>>,
    mut s: RefMut<'a, State<T, O>>,
    deadline: Option<Instant>,
) -> Result<T, GetError> {
    let hub = hub();
    let timer = DeadlineTimer::arm(deadline);
    let waiting = pin!(InLine::<_, GetterLine<T, O>, _>::new(state, Taker::new()));
    let taker = waiting.as_ref().waiter();
    // SAFETY: the taker is new, so in no line; it is pinned, and `InLine`'s drop takes it out
    // of the line before it is dropped, on every way out of this function (an unwind included).
    unsafe { s.getters.push_back(taker, hub.current_queued()) };
    drop(s);
    loop {
        let parked = hub.park_inline(KIND);
        // The usual wake-up: a put delivered an item (and took the taker out of line).
        if parked.is_ok() {
            if let Some(item) = taker.take_item() {
                return Ok(item);
            }
        }
        if let Some(end) = woken_otherwise(state, taker, parked, &timer) {
            return end;
        }
    }
}

/// A getter woken otherwise than with an item and no interruption: interrupted (with an item
/// delivered or not), the queue closed, its deadline passed, or a wake-up that was not for it.
/// Says how its get ends, or `None` to wait again. Out of line, so that the wait's loop keeps
/// its registers for the usual wake-up.
#[cold]
#[inline(never)]
#[allow(unsafe_code)] // see the SAFETY comment
fn woken_otherwise<T, O: QueueOrder<T>>(
    state: &RefCell<State<T, O>>,
    taker: Pin<&Taker<T>>,
    parked: Result<(), Interrupted>,
    timer: &DeadlineTimer,
) -> Option<Result<T, GetError>> {
    let mut s = state.borrow_mut();
    if let Some(item) = taker.take_item() {
        return Some(match parked {
            // Not reached: the wait returns such an item itself.
            Ok(()) => Ok(item),
            // Not reached either: an item goes only to a parked getter, whose wake-up then
            // carries no interruption (one that comes later is delivered at its next wait).
            // Should it happen, the item is put again rather than lost with this get.
            Err(why) => {
                s.add(item);
                Err(GetError::Interrupted(why))
            }
        });
    }
    let end = match parked {
        Err(why) => Err(GetError::Interrupted(why)),
        // Closing drains: items go first.
        Ok(()) if !s.items.is_empty() => Ok(()),
        Ok(()) if s.closed => Err(GetError::Closed),
        Ok(()) if timer.expired() => Err(GetError::Empty),
        Ok(()) => {
            if !taker.is_linked() {
                // Out of line with nothing delivered and the queue open: only closing takes
                // getters out that way, so this is defence: wait again, first in line.
                // SAFETY: the taker is in no line (tested); it is pinned, and `InLine`'s drop
                // in `wait_for_item` unlinks it, as for the first push.
                unsafe { s.getters.push_front(taker, hub().current_queued()) };
            }
            return None;
        }
    };
    drop(s.getters.remove(&taker));
    Some(end.map(|()| GenericQueue::<T, O>::pop(s)))
}

/// The line of a queue's getters, for [`InLine`].
struct GetterLine<T, O>(PhantomData<(T, O)>);

impl<T, O: QueueOrder<T>> LineIn<State<T, O>> for GetterLine<T, O> {
    fn remove(s: &mut State<T, O>, place: &Place) -> Option<QueuedTask> {
        s.getters.remove_place(place)
    }
}
