//! The hub: one per thread, it owns the run queue, the timers, the I/O registrations and the
//! table of live greenlets, and runs them all.
//!
//! # Scheduling order
//!
//! - A spawned greenlet goes to the back of the run queue; it starts once the spawner parks or
//!   yields, after every greenlet queued before it (FIFO).
//! - [`yield_now`](crate::yield_now) puts the caller at the back of the run queue.
//! - A woken greenlet (timer fired, event set, I/O ready, killed) goes to the back of the run
//!   queue.
//! - Expired timers, I/O readiness and work posted from other threads are collected whenever
//!   the run queue is empty, before the main greenlet resumes if they were not collected since
//!   it last ran, and, while the run queue is busy, after every [`CHECK_EVERY`] greenlet
//!   resumptions. So every greenlet, main included, sees them collected at least once per pass
//!   of the run queue, and a busy run queue (even one where only main yields) cannot starve
//!   I/O or timers.
//! - The hub loop runs on the main greenlet's stack while the main greenlet waits; the main
//!   greenlet continues when its turn in the run queue comes. Where gevent-core has its own
//!   context switch (x86-64, Cortex-M), a greenlet that parks or yields switches straight to
//!   the next one when the loop has nothing else due (`Hub::switch_directly`): the order
//!   above is the same, and so is the collection of events every [`CHECK_EVERY`] resumptions.

mod context;
mod current;
pub(crate) mod fault_context;
pub mod heartbeat;
pub(crate) mod io;
mod live;
mod report;
mod run_queue;
mod snapshot;
pub(crate) mod switch;

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::time::Duration;

pub use current::{AlreadyInstalled, install, run, shutdown};
pub(crate) use current::{current_hub_ptr, hub, hub_of_waiter, try_hub};
pub use io::IoRegistration;
pub(crate) use live::LiveLinks;
use live::LiveList;
pub(crate) use run_queue::QueuedTask;
use run_queue::RunQueue;

/// Calls `f` with the current hub's poller, for platform crates that need their concrete
/// poller (downcast with [`Poller::as_any_mut`]). `f` must not call back into the hub.
pub fn with_poller<R>(f: impl FnOnce(&mut dyn Poller) -> R) -> R {
    f(&mut **hub().poller().borrow_mut())
}

use crate::error::{FailureKind, Interrupted, TimeoutId};
use crate::greenlet::task::{MainBody, State, Task, TaskRef, WaitKind};
use crate::platform::{Clock, Platform, Poller, Readiness, Token};
use crate::remote::{HubHandle, Remote, SleepCheck};
use crate::shared::Shared;
use crate::slab::{Key, Slab};
use crate::stack::StackPool;
use crate::time::Instant;
use crate::timer::{TimerHeap, TimerKey};
use crate::wait_list::WaitList;

/// While the run queue is busy, timers, I/O and posted work are collected after this many
/// greenlet resumptions. A poll is a system call, so doing it on every switch would cost more
/// than the switch; 64 bounds the delay to 64 greenlet time slices.
pub const CHECK_EVERY: u32 = 64;

/// Run queues at least this long get the greenlets about to run prefetched while one runs (see
/// [`Hub::prefetch_ahead`]); a shorter queue is cache-hot anyway.
#[cfg(target_arch = "x86_64")]
const PREFETCH_QUEUE_LEN: usize = 16;

/// Greenlets whose stacks' address translations [`Hub::prefetch_ahead`] looks up at once.
#[cfg(target_arch = "x86_64")]
const PREFETCH_BATCH: usize = 4;

// `prefetch_ahead` reaches 2 * PREFETCH_BATCH places into the queue.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(PREFETCH_QUEUE_LEN > 2 * PREFETCH_BATCH);

/// Bits of [`Hub::slow`]: what makes a resume take the slow path.
mod slow {
    /// A blocking detector's heartbeat is attached.
    pub(super) const HEARTBEAT: u8 = 1;
    /// Event callbacks are registered.
    pub(super) const OBSERVED: u8 = 2;
    /// `tracing` spans are entered and left around each resume.
    pub(super) const TRACING: u8 = 4;
}

/// How long [`shutdown`] waits for killed greenlets to return before abandoning them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Wake a greenlet parked with a deadline (sleep, join with timeout).
    Wake(TaskRef),
    /// Like `Wake`, but the timer does not keep the hub alive (gevent's `ref=False`): it does
    /// not count when deciding that the main greenlet would wait forever.
    WakeUnref(TaskRef),
    /// Expire a [`Timeout`](crate::Timeout) of a greenlet.
    Timeout(TaskRef, TimeoutId),
    /// Start a greenlet spawned with a delay.
    Start(TaskRef),
}

/// The per-thread scheduler. See the module docs for the scheduling order.
pub(crate) struct Hub {
    poller: RefCell<alloc::boxed::Box<dyn Poller>>,
    clock: alloc::boxed::Box<dyn Clock>,
    stacks: StackPool,
    run_queue: RunQueue,
    timers: RefCell<TimerHeap<TimerAction>>,
    pub(crate) io: RefCell<Slab<io::IoEntry>>,
    live: LiveList,
    /// The buffer [`Hub::poll`] collects readiness events in, reused between polls.
    ready_events: Cell<Vec<(Token, Readiness)>>,
    idle_waiters: RefCell<WaitList<TaskRef>>,
    main: TaskRef,
    current: switch::CurrentSlot,
    /// The hub loop's context while it waits for the greenlet it switched to.
    loop_context: switch::LoopContext,
    remote: Shared<Remote>,
    default_stack_size: usize,
    next_id: Cell<u64>,
    next_timeout_id: Cell<u64>,
    resumes_since_check: Cell<u32>,
    /// Whether events were collected since the main greenlet last ran.
    checked_since_main: Cell<bool>,
    /// The main greenlet is parked in `wait()`, for every other greenlet to finish: a flag,
    /// not a look at main's wait kind, for the test every finish makes.
    main_waits_for_all: Cell<bool>,
    /// How many pending timers are `WakeUnref` ones.
    unref_timers: Cell<usize>,
    /// Turns of the run queue until [`Hub::prefetch_ahead`] starts its next batch.
    #[cfg(target_arch = "x86_64")]
    prefetch_turn: Cell<usize>,
    /// The [`slow`] bits: the rare per-resume work (heartbeat, event callbacks, tracing) that
    /// the switch path tests for with one load.
    slow: Cell<u8>,
    /// Whether event callbacks are registered ([`crate::events`]): the one test an event point
    /// costs when nobody listens.
    observed: Cell<bool>,
    /// A greenlet that registered the first event callbacks while it ran: the loop's fast path
    /// decided before resuming it that nobody listens, so its switch out is reported by the
    /// next [`Hub::check_events`], which its registration brought forward to right after.
    owed_switch_out: Cell<Option<u64>>,
    /// Set while event callbacks run: blocking calls fail instead of switching.
    in_callback: Cell<bool>,
    /// The event callbacks of a `no_std` program (with `std` they belong to the thread).
    #[cfg(not(feature = "std"))]
    hooks: crate::events::Hooks,
    /// What the blocking detector reads, once one is attached.
    heartbeat: core::cell::OnceCell<Shared<heartbeat::Heartbeat>>,
    /// The greenlet that finished last, whose allocation the next spawn reuses if it is of the
    /// same layout and nothing else refers to it any more (see `TaskRef::new_node`). It keeps that
    /// one finished greenlet's memory until the next spawn or end: the loop puts a greenlet
    /// that ran here once it took its stack back, `Hub::finish_unstarted` one that never ran.
    recycled: Cell<Option<TaskRef>>,
    /// Where new greenlets' headers come from (see [`crate::headers`]): `None` for the heap.
    header_source: Cell<Option<&'static dyn crate::headers::HeaderSource>>,
}

impl Hub {
    pub(crate) fn new(platform: Platform) -> Self {
        let location = core::panic::Location::caller();
        let task = || Task::new(0, None, location, 0, true);
        let main = TaskRef::new_node(None, None, task, MainBody).expect("the heap has no limit").0;
        main.task().state.set(State::Running);
        main.task().ran.set(true);
        let remote = crate::shared::share(Remote::new(platform.poller.remote_waker()));
        let heartbeat = core::cell::OnceCell::new();
        #[cfg(feature = "std")]
        if let Some(hook) = heartbeat::NEW_HUB_HOOK.get() {
            if let Some(beat) = hook(HubHandle { remote: remote.clone() }) {
                beat.spawned(main.task());
                beat.switched_in(main.task());
                let _ = heartbeat.set(beat);
            }
        }
        let hub = Hub {
            poller: RefCell::new(platform.poller),
            clock: platform.clock,
            stacks: StackPool::new(platform.stacks),
            run_queue: RunQueue::new(),
            timers: RefCell::new(TimerHeap::new()),
            io: RefCell::new(Slab::new()),
            live: LiveList::new(),
            ready_events: Cell::new(Vec::new()),
            idle_waiters: RefCell::new(WaitList::new()),
            current: switch::CurrentSlot::new(&main),
            main,
            loop_context: switch::LoopContext::new(),
            remote,
            default_stack_size: platform.default_stack_size,
            next_id: Cell::new(1),
            next_timeout_id: Cell::new(1),
            resumes_since_check: Cell::new(0),
            checked_since_main: Cell::new(false),
            main_waits_for_all: Cell::new(false),
            unref_timers: Cell::new(0),
            #[cfg(target_arch = "x86_64")]
            prefetch_turn: Cell::new(0),
            slow: Cell::new(0),
            observed: Cell::new(crate::events::observed_at_creation()),
            owed_switch_out: Cell::new(None),
            in_callback: Cell::new(false),
            #[cfg(not(feature = "std"))]
            hooks: crate::events::Hooks::new(),
            heartbeat,
            recycled: Cell::new(None),
            header_source: Cell::new(None),
        };
        hub.update_slow();
        hub
    }

    /// Recomputes [`Hub::slow`] after a change of what it summarizes.
    fn update_slow(&self) {
        let mut bits = 0;
        if self.heartbeat.get().is_some() {
            bits |= slow::HEARTBEAT;
        }
        if self.observed.get() {
            bits |= slow::OBSERVED;
        }
        if cfg!(feature = "tracing") {
            bits |= slow::TRACING;
        }
        self.slow.set(bits);
    }

    // --- the blocking detector's heartbeat ---------------------------------------------------

    /// Attaches the heartbeat this hub publishes its switches in.
    pub(crate) fn attach_heartbeat(
        &self,
        beat: Shared<heartbeat::Heartbeat>,
    ) -> Result<(), heartbeat::AlreadyAttached> {
        if self.heartbeat.get().is_some() {
            return Err(heartbeat::AlreadyAttached::new());
        }
        beat.spawned(self.main.task());
        for t in self.live_greenlets() {
            beat.spawned(t.task());
        }
        beat.switched_in(self.current_task());
        let attached = self.heartbeat.set(beat).map_err(|_| heartbeat::AlreadyAttached::new());
        self.update_slow();
        attached
    }

    /// Publishes a switch-in to the heartbeat, if one is attached: one test otherwise.
    #[inline(always)]
    fn beat(&self, task: &Task) {
        if let Some(beat) = self.heartbeat.get() {
            beat.switched_in(task);
        }
    }

    // --- event callbacks ------------------------------------------------------------------

    /// Whether event callbacks are registered.
    pub(crate) fn observed(&self) -> bool {
        self.observed.get()
    }

    /// Records whether event callbacks are registered.
    pub(crate) fn set_observed(&self, observed: bool) {
        let was = self.observed.replace(observed);
        let task = self.current_task();
        if observed && !was && !task.is_main && self.slow.get() == 0 {
            self.owed_switch_out.set(Some(task.id));
            self.resumes_since_check.set(CHECK_EVERY - 1);
        }
        self.update_slow();
    }

    /// The event callbacks of a `no_std` program.
    #[cfg(not(feature = "std"))]
    pub(crate) fn hooks(&self) -> &crate::events::Hooks {
        &self.hooks
    }

    /// Makes blocking calls fail until the guard is dropped: event callbacks run inside the
    /// hub (some inside its loop, on the main greenlet's stack), where a switch would resume
    /// the loop from within itself. The current greenlet's `attention` sends its next blocking
    /// call to [`Hub::due_interrupt_slow`], which refuses it; left set afterwards, it costs
    /// one slow check that clears it.
    pub(crate) fn refuse_switches(&self) -> RefuseSwitches<'_> {
        self.current_task().attention.set(true);
        RefuseSwitches { hub: self, was: self.in_callback.replace(true) }
    }

    /// Where new greenlets' headers come from: `None` for the heap.
    #[inline]
    pub(crate) fn header_source(&self) -> Option<&'static dyn crate::headers::HeaderSource> {
        self.header_source.get()
    }

    /// Makes later spawns take their headers from `source`.
    pub(crate) fn set_header_source(
        &self,
        source: Option<&'static dyn crate::headers::HeaderSource>,
    ) {
        // The recycled node may be from the other source: a spawn must not reuse it.
        drop(self.recycled.take());
        self.header_source.set(source);
    }

    /// The last finished greenlet, for a spawn to reuse its allocation.
    #[inline]
    pub(crate) fn take_recycled(&self) -> Option<TaskRef> {
        self.recycled.take()
    }

    /// The stack size of greenlets spawned without one.
    pub(crate) fn default_stack_size(&self) -> usize {
        self.default_stack_size
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(crate) fn next_greenlet_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    pub(crate) fn next_timeout_id(&self) -> TimeoutId {
        let id = self.next_timeout_id.get();
        self.next_timeout_id.set(id + 1);
        TimeoutId(core::num::NonZeroU64::new(id).expect("timeout ids start at 1"))
    }

    /// The greenlet running now.
    #[inline]
    pub(crate) fn current(&self) -> TaskRef {
        self.current.get()
    }

    /// The greenlet running now as a run queue entry, for a waiter's line to hand to
    /// [`Hub::notify_queued`] (no count touched on the way).
    #[inline]
    pub(crate) fn current_queued(&self) -> QueuedTask {
        self.current.queued()
    }

    /// Called by a greenlet about to return: see [`switch::CurrentSlot::lend_back`].
    #[inline]
    pub(crate) fn returning(&self, me: TaskRef) {
        self.current.lend_back(me);
    }

    /// The hub loop's context, which a greenlet switches back to.
    #[cfg(gevent_own_switch)]
    #[inline]
    pub(crate) fn loop_context(&self) -> &switch::LoopContext {
        &self.loop_context
    }

    /// The header of the greenlet running now; see [`switch::CurrentSlot::task`].
    #[inline]
    pub(crate) fn current_task(&self) -> &Task {
        self.current.task()
    }

    pub(crate) fn handle(&self) -> HubHandle {
        HubHandle { remote: Shared::clone(&self.remote) }
    }

    pub(crate) fn poller(&self) -> &RefCell<alloc::boxed::Box<dyn Poller>> {
        &self.poller
    }

    // --- spawning ------------------------------------------------------------------------

    /// Records a greenlet that could not be spawned (`failure` says why): observers see it
    /// spawned, then finished at once, as one killed before it started.
    #[cold]
    pub(crate) fn fail_spawn(&self, t: TaskRef, failure: FailureKind) {
        self.live.insert(t.clone());
        let task = t.task();
        self.note_spawned(task);
        if self.observed.get() {
            crate::events::spawned(self, &t);
        }
        // A spawn callback may have killed it, which finished it already.
        if !task.is_finished() {
            self.finish_unstarted(&t, failure);
        }
    }

    /// Records a new greenlet's parent and tells the heartbeat and tracing of it.
    #[inline(always)]
    fn note_spawned(&self, task: &Task) {
        task.parent.set(self.current_task().id);
        if let Some(beat) = self.heartbeat.get() {
            beat.spawned(task);
        }
        #[cfg(feature = "tracing")]
        crate::events::tracing::spawned(self, task, self.current_task().id);
    }

    /// Schedules a new greenlet: now (back of the run queue) or when `start_at` passes.
    /// `listed` and `t` are two counts of it, for the live list and the run queue or start
    /// timer: made by the spawn, where they join the node's first count in one store.
    pub(crate) fn schedule_new(&self, listed: TaskRef, t: TaskRef, start_at: Option<Instant>) {
        debug_assert!(listed.as_ptr() == t.as_ptr(), "two counts of one greenlet");
        self.live.insert(listed);
        let task = t.task();
        self.note_spawned(task);
        // Callbacks see it scheduled: one that kills it must find it in the run queue.
        let observed = self.observed.get().then(|| t.clone());
        match start_at {
            None => {
                task.state.set(State::Runnable);
                self.run_queue.push(QueuedTask::new(t));
            }
            Some(at) => {
                task.state.set(State::Created);
                let timer = self.add_timer(at, TimerAction::Start(t.clone()));
                task.set_start_timer(Some(timer));
            }
        }
        if let Some(t) = observed {
            crate::events::spawned(self, &t);
        }
    }

    // --- parking and waking ---------------------------------------------------------------

    /// Fails with the interruption that is due before a wait starts: a sticky kill (outside
    /// shields) or a timeout that expired while the greenlet was busy.
    #[inline]
    fn due_interrupt(&self, task: &Task) -> Result<(), Interrupted> {
        if task.attention.get() { self.due_interrupt_slow(task) } else { Ok(()) }
    }

    /// The rare case of [`Hub::due_interrupt`]: something is pending.
    ///
    /// A kill is delivered again and again (it is sticky); each time after a yield, so that a
    /// greenlet that drops the error and loops on cannot starve the others (the one that
    /// killed it may be waiting with a timeout).
    #[cold]
    #[inline(never)]
    #[allow(unsafe_code)] // the switch out: see the SAFETY comment
    fn due_interrupt_slow(&self, task: &Task) -> Result<(), Interrupted> {
        if self.in_callback.get() {
            return Err(Interrupted::Deadlock(alloc::string::String::from(
                "a blocking call from an event callback (gevent::events), which runs inside the \
                 hub's switch and must not switch greenlets",
            )));
        }
        if task.kill_is_deliverable() {
            if task.kill_delivered.get() {
                task.state.set(State::Runnable);
                self.run_queue.push(self.current.queued());
                let current = self.current_task();
                // SAFETY: the running greenlet's header.
                unsafe { self.switch_out(current) };
            }
            return Err(self.deliver_kill(task));
        }
        let pending = task.pending_timeout.take();
        task.attention.set(task.killed.get());
        match pending {
            Some(id) => Err(Interrupted::TimedOut(id)),
            None => Ok(()),
        }
    }

    /// The kill error for `task`'s blocking call, recorded as delivered.
    ///
    /// The main greenlet is killed once (gevent raises `GreenletExit` in it once): the thread's
    /// own stack cannot end, so a sticky kill would fail every later blocking call of the
    /// program. Other greenlets stay killed.
    fn deliver_kill(&self, task: &Task) -> Interrupted {
        let why = task.kill_error();
        if task.is_main {
            task.killed.set(false);
            task.clear_kill_reason();
            task.attention.set(task.pending_timeout.get().is_some());
        } else {
            task.kill_delivered.set(true);
        }
        why
    }

    /// Refuses to switch while the thread unwinds from a panic: the panic count is
    /// per thread, so every other greenlet would see `std::thread::panicking()`.
    #[inline(always)]
    fn refuse_while_unwinding(&self) -> Result<(), Interrupted> {
        #[cfg(feature = "std")]
        if std::thread::panicking() {
            return Err(Interrupted::Unwinding);
        }
        Ok(())
    }

    /// Parks the main greenlet until every other greenlet finished or none can ever run again
    /// (`gevent::wait()`), or an interruption.
    pub(crate) fn park_main_until_all_finished(&self) -> Result<(), Interrupted> {
        debug_assert!(self.current_task().is_main);
        self.main_waits_for_all.set(true);
        let parked = self.park(WaitKind::Everything);
        self.main_waits_for_all.set(false);
        parked
    }

    /// Parks the current greenlet until something wakes it. `Ok` means a normal wake-up (the
    /// caller re-checks what it waits for); `Err` says why the wait was interrupted.
    pub(crate) fn park(&self, kind: WaitKind) -> Result<(), Interrupted> {
        self.park_inline(kind)
    }

    /// [`Hub::park`] inlined into the caller, for a hot wait (a queue's get): no
    /// call, no prologue, and the wait kind and outcome stay in registers instead of passing
    /// through memory.
    #[inline(always)]
    #[allow(unsafe_code)] // the switch out: see the SAFETY comment
    pub(crate) fn park_inline(&self, kind: WaitKind) -> Result<(), Interrupted> {
        let task = self.current_task();
        self.due_interrupt(task)?;
        self.refuse_while_unwinding()?;
        task.state.set(State::Parked);
        task.waits_on.set(kind);
        // SAFETY: `task` is the running greenlet's: read above, and a switch since (in
        // `due_interrupt`) came back to it.
        unsafe { self.switch_out(task) };
        match task.take_interrupt() {
            None => Ok(()),
            Some(why) => Err(self.interrupted(task, why)),
        }
    }

    #[cold]
    fn interrupted(&self, task: &Task, why: Interrupted) -> Interrupted {
        if matches!(why, Interrupted::Killed | Interrupted::KilledWith(_)) {
            return self.deliver_kill(task);
        }
        why
    }

    /// Puts the current greenlet at the back of the run queue and runs the others.
    // Inlined into the caller so that, after the switch back, no `ret` is left whose
    // return-stack-buffer entry the other greenlets overwrote: each such `ret` mispredicts,
    // which measured at ~18 ns per switch on the development machine.
    #[inline(always)]
    #[allow(unsafe_code)] // the switch out: see the SAFETY comment
    pub(crate) fn yield_now(&self) -> Result<(), Interrupted> {
        let task = self.current_task();
        self.due_interrupt(task)?;
        self.refuse_while_unwinding()?;
        task.state.set(State::Runnable);
        self.run_queue.push(self.current.queued());
        // SAFETY: `task` is the running greenlet's: read above, and a switch since (in
        // `due_interrupt`) came back to it.
        unsafe { self.switch_out(task) };
        // A kill or timeout that came while it waited its turn is delivered here.
        self.due_interrupt(task)
    }

    /// Switches away from the running greenlet until something switches back to it.
    ///
    /// # Safety
    ///
    /// `task` is the running greenlet's header.
    #[inline(always)]
    #[allow(unsafe_code)] // the switch: see the SAFETY comments
    unsafe fn switch_out(&self, task: &Task) {
        // Handler mode was refused on the way to the hub (`hub()`), before anything changed.
        if task.is_main {
            // SAFETY: main runs (the caller's contract): this is on its stack.
            unsafe { self.run_until_main_runs() };
            return;
        }
        // SAFETY: the caller's contract, and `task` is not main's.
        #[cfg(gevent_own_switch)]
        if unsafe { self.switch_directly(task) } {
            return;
        }
        // SAFETY: `task` is the running greenlet's (the caller's contract).
        unsafe { task.context.suspend(&self.loop_context) };
    }

    /// Switches from the running greenlet (not main) straight to the next one in the run
    /// queue, as the loop would after this one switched back to it, when nothing else of the
    /// loop's turn is due: the next one is suspended (so started, not main, which the loop
    /// returns to, and not this one, which yielded into an otherwise empty run queue), no
    /// slow-path work is asked for, and the check of timers and I/O is not due. False, having
    /// changed nothing, otherwise: the caller switches back to the loop.
    ///
    /// A suspended greenlet in the run queue is runnable: only a running greenlet parks, and
    /// ending a suspended one (`abandon_live`) takes its context apart first.
    ///
    /// # Safety
    ///
    /// `task` is the running greenlet's header, and not main's.
    #[cfg(gevent_own_switch)]
    #[inline(always)]
    #[allow(unsafe_code)] // the switch: see the SAFETY comment
    unsafe fn switch_directly(&self, task: &Task) -> bool {
        if self.slow.get() != 0 {
            return false;
        }
        let n = self.resumes_since_check.get() + 1;
        if n >= CHECK_EVERY {
            return false;
        }
        let Some(next) = self.run_queue.pop() else { return false };
        // A started greenlet is queued only when it becomes runnable, and ends only by running:
        // checked before the take, which would lose its saved stack pointer if this failed.
        debug_assert!(
            next.task().context.suspended_sp() == 0 || next.task().state.get() == State::Runnable
        );
        let Some(to) = next.task().context.take_if_suspended() else {
            self.run_queue.push_front(next);
            return false;
        };
        #[cfg(target_arch = "x86_64")]
        if self.run_queue.len() >= PREFETCH_QUEUE_LEN {
            self.prefetch_ahead(&next);
        }
        self.resumes_since_check.set(n);
        next.task().state.set(State::Running);
        // SAFETY: `task` is the running greenlet's (the caller's contract).
        unsafe { self.current.switch_to(&task.context, next, to) };
        true
    }

    /// Tells a waiter that what it waits for happened: wakes it if it is parked.
    pub(crate) fn notify(&self, t: TaskRef) {
        let task = t.task();
        if task.state.get() == State::Parked {
            task.state.set(State::Runnable);
            self.run_queue.push(QueuedTask::new(t));
        }
    }

    /// [`Hub::notify`] for a greenlet held as a run queue entry.
    #[inline]
    pub(crate) fn notify_queued(&self, t: QueuedTask) {
        let task = t.task();
        if task.state.get() == State::Parked {
            task.state.set(State::Runnable);
            self.run_queue.push(t);
        }
    }

    /// Wakes a parked greenlet normally; no effect on one that is not parked.
    pub(crate) fn unpark(&self, t: &TaskRef) {
        let task = t.task();
        if task.state.get() == State::Parked {
            task.state.set(State::Runnable);
            self.run_queue.push(QueuedTask::new(t.clone()));
        }
    }

    /// Interrupts a greenlet's current wait, or its next one if it is not waiting.
    pub(crate) fn interrupt(&self, t: &TaskRef, why: Interrupted) {
        let task = t.task();
        let is_kill = matches!(why, Interrupted::Killed | Interrupted::KilledWith(_));
        if task.state.get() == State::Parked {
            if is_kill && task.shield_depth.get() > 0 {
                return; // delivered when the shield ends, by the sticky flag
            }
            task.interrupt.set(Some(why));
            task.state.set(State::Runnable);
            self.run_queue.push(QueuedTask::new(t.clone()));
        } else if let Interrupted::TimedOut(id) = why {
            // Woken by an inner timeout in this same turn: the outer one (started first,
            // smaller id) wins, as its scope encloses the inner one.
            let queued = task.interrupt.take();
            if let Some(Interrupted::TimedOut(inner)) = queued {
                if id < inner {
                    task.interrupt.set(Some(why));
                    return;
                }
            }
            task.interrupt.set(queued);
            // Outer scopes were started first and have smaller ids: report the outermost.
            let pending = task.pending_timeout.get().map_or(id, |p| p.min(id));
            task.pending_timeout.set(Some(pending));
            task.attention.set(true);
        }
    }

    // --- timers ---------------------------------------------------------------------------

    pub(crate) fn add_timer(&self, deadline: Instant, action: TimerAction) -> TimerKey {
        if matches!(action, TimerAction::WakeUnref(_)) {
            self.unref_timers.set(self.unref_timers.get() + 1);
        }
        self.timers.borrow_mut().insert(deadline, action)
    }

    /// Cancels a timer; true if it was still pending.
    pub(crate) fn cancel_timer(&self, key: TimerKey) -> bool {
        let action = self.timers.borrow_mut().cancel(key);
        if matches!(action, Some(TimerAction::WakeUnref(_))) {
            self.unref_timers.set(self.unref_timers.get() - 1);
        }
        action.is_some() // dropped here, outside the borrow
    }

    /// Whether a pending timer keeps the hub alive (one not made with `ref=False`).
    fn has_ref_timers(&self) -> bool {
        self.timers.borrow().len() > self.unref_timers.get()
    }

    pub(crate) fn timer_pending(&self, key: TimerKey) -> bool {
        self.timers.borrow().contains(key)
    }

    /// Fires the expired timers; inline for the usual answer, none pending.
    #[inline]
    fn fire_timers(&self) {
        if !self.timers.borrow().is_empty() {
            self.fire_expired_timers();
        }
    }

    #[inline(never)]
    fn fire_expired_timers(&self) {
        let now = self.now();
        loop {
            let action = self.timers.borrow_mut().pop_expired(now);
            match action {
                None => break,
                Some(TimerAction::Wake(t)) => self.unpark(&t),
                Some(TimerAction::WakeUnref(t)) => {
                    self.unref_timers.set(self.unref_timers.get() - 1);
                    self.unpark(&t);
                }
                Some(TimerAction::Timeout(t, id)) => {
                    t.task().note_expired_timeout(id);
                    self.interrupt(&t, Interrupted::TimedOut(id));
                }
                Some(TimerAction::Start(t)) => {
                    let task = t.task();
                    task.take_start_timer();
                    if task.state.get() == State::Created {
                        task.state.set(State::Runnable);
                        self.run_queue.push(QueuedTask::new(t));
                    }
                }
            }
        }
    }

    // --- kill and finish ------------------------------------------------------------------

    /// Kills a greenlet: an unstarted one finishes at once without running its body; a
    /// started one has its current or next blocking call return `Killed`.
    pub(crate) fn kill(&self, t: &TaskRef) {
        self.kill_with(t, None);
    }

    /// [`Hub::kill`], with a reason that the blocking calls return instead of `Killed`, which
    /// makes the kill a failure (gevent's `kill(exception=...)`).
    pub(crate) fn kill_with(&self, t: &TaskRef, reason: Option<alloc::borrow::Cow<'static, str>>) {
        let task = t.task();
        if task.is_finished() {
            return;
        }
        if let Some(reason) = reason {
            task.set_kill_reason(reason);
        }
        task.killed.set(true);
        task.attention.set(true);
        if !task.is_main && !task.ran.get() {
            if let Some(timer) = task.take_start_timer() {
                self.cancel_timer(timer);
            }
            t.discard();
            let failure = match task.kill_error() {
                Interrupted::KilledWith(reason) => FailureKind::KilledWith(reason),
                _ => FailureKind::Killed,
            };
            self.finish_unstarted(t, failure);
            return;
        }
        self.interrupt(t, task.kill_error());
    }

    /// Records a greenlet's end and runs its link callbacks, then wakes its joiners (so that
    /// `join` returns after the links ran, as in gevent, where `join` is itself a link).
    /// Gives back the live list's count of it (`None` if it was not listed), dropped only
    /// after all that: a greenlet finishing itself hands it to the loop (see
    /// [`switch::run_to_end`]), which recycles the node once it took back the stack; the
    /// callers that finish a greenlet that never started recycle it through
    /// [`Hub::finish_unstarted`].
    #[must_use = "the live list's count of the greenlet is handed back"]
    pub(crate) fn finish(&self, t: &TaskRef, failure: Option<FailureKind>) -> Option<TaskRef> {
        let task = t.task();
        task.state.set(State::Finished);
        if self.observed.get() {
            crate::events::finished(self, task, failure.as_ref());
        }
        #[cfg(feature = "tracing")]
        crate::events::tracing::finished(self, task, failure.as_ref());
        task.set_outcome(failure);
        let listed = self.live.remove(task);
        // Read once: waking the first joiner gives no greenlet an extras box.
        let may_have_extras = task.may_have_extras();
        if may_have_extras && task.has_links() {
            task.links_pending.set(true);
            crate::greenlet::spawn_links(t);
        } else {
            // The usual lone joiner woken here, without the loop over the others.
            if let Some(first) = task.take_first_joiner() {
                self.notify_queued(QueuedTask::new(first));
            }
            // Other joiners wait in the extras box.
            if may_have_extras {
                self.wake_joiners(task);
            }
        }
        if self.main_waits_for_all.get() && self.live_count() == 0 {
            self.unpark(&self.main);
        }
        listed
    }

    /// [`Hub::finish`] for a greenlet that never started (killed before it ran, or without a
    /// stack or a header for its start), whose node is recycled at once.
    fn finish_unstarted(&self, t: &TaskRef, failure: FailureKind) {
        drop(self.finish(t, Some(failure)));
        self.recycled.set(Some(t.clone()));
    }

    /// Wakes the greenlets waiting for `task` to be done.
    pub(crate) fn wake_joiners(&self, task: &Task) {
        while let Some(joiner) = task.pop_joiner() {
            if let Some((log, index)) = joiner.log {
                log.borrow_mut().push(index);
            }
            self.notify(joiner.waiter);
        }
    }

    // --- the loop -------------------------------------------------------------------------

    /// Runs greenlets, timers and I/O until the main greenlet is at the front of the run queue.
    ///
    /// # Safety
    ///
    /// The main greenlet runs: this is on its stack, where the hub loop runs.
    #[inline(never)]
    #[allow(unsafe_code)] // the resume: see the SAFETY comment
    unsafe fn run_until_main_runs(&self) {
        if self.observed.get() {
            crate::events::switched(self, Some(self.main.task().id), None);
        }
        loop {
            let Some(t) = self.run_queue.pop() else {
                self.check_events(true);
                continue;
            };
            #[cfg(target_arch = "x86_64")]
            if self.run_queue.len() >= PREFETCH_QUEUE_LEN {
                self.prefetch_ahead(&t);
            }
            if t.task().is_main {
                if !self.checked_since_main.get() {
                    self.collect_events();
                }
                self.checked_since_main.set(false);
                t.task().state.set(State::Running);
                self.beat(t.task());
                if self.observed.get() {
                    crate::events::switched(self, None, Some(t.task().id));
                }
                return;
            }
            // SAFETY: main runs (the caller's contract).
            unsafe { self.resume(t) };
            let n = self.resumes_since_check.get() + 1;
            if n >= CHECK_EVERY {
                self.collect_events();
            } else {
                self.resumes_since_check.set(n);
            }
        }
    }

    /// While the greenlet just popped (`next`) runs, fetches what the ones after it touch
    /// first: with many runnable greenlets it is all cold, and waiting for it was most of the
    /// cost of a wake-up (idle workload: ~700 -> ~430 ns for the next header and the lines
    /// around its stack pointer, -> ~370 ns with the rest below).
    ///
    /// - The next one's stack, up through the frames it returns to (a greenlet that ends
    ///   returns through all of them).
    /// - Every [`PREFETCH_BATCH`] turns, one line of each of the next `PREFETCH_BATCH` stacks:
    ///   each stack lies on its own pages, and a prefetch waits for its page's address
    ///   translation, so looking them up together overlaps those walks instead of stalling
    ///   on one per greenlet. With them, the headers and bodies of the `PREFETCH_BATCH` after
    ///   those, whose stack pointers the next batch reads.
    ///
    /// Only on x86-64, where `prefetch` does something: elsewhere its bookkeeping would be
    /// all the cost.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn prefetch_ahead(&self, next: &QueuedTask) {
        let turn = self.prefetch_turn.get();
        if turn == 0 {
            self.run_queue.prefetch_ahead(0..PREFETCH_BATCH, true);
            self.run_queue.prefetch_ahead(PREFETCH_BATCH..2 * PREFETCH_BATCH, false);
        }
        self.prefetch_turn.set((turn + 1) % PREFETCH_BATCH);
        next.task().context.prefetch_stack();
    }

    /// Resumes `t` if it is still runnable, starting it first if it never ran, and takes back
    /// the stack of the greenlet that switched back if it returned.
    ///
    /// # Safety
    ///
    /// The main greenlet runs: this is on its stack, where the hub loop runs.
    #[inline(always)]
    #[allow(unsafe_code)] // the resume: see the SAFETY comments
    unsafe fn resume(&self, t: QueuedTask) {
        let task = t.task();
        if task.state.get() != State::Runnable {
            return; // finished while queued (killed before it started)
        }
        if !task.ran.get() && !self.start(&t) {
            return;
        }
        task.state.set(State::Running);
        let back = if self.slow.get() == 0 {
            // SAFETY: main runs, and this is its hub's loop (the caller's contract).
            unsafe { self.current.resume(t, &self.loop_context) }
        } else {
            // SAFETY: as above.
            unsafe { self.resume_slow(t) }
        };
        // The greenlet that switched back: `t`, or one reached from it by direct switches.
        if let Some(back) = back {
            if let Some(stack) = back.task().context.take_stack_if_returned() {
                self.stacks.give_back(stack);
                // The loop's count of the greenlet that ended: the next spawn may reuse its
                // node (moved in, no count touched).
                self.recycled.set(Some(back.into_task_ref()));
            }
        }
    }

    /// Gives a greenlet's first run its stack and coroutine; false when there is no stack for
    /// it (it then finishes with that failure). Inline in the loop, the failure out of line:
    /// the call was ~20 of the ~700 instructions of a spawn and finish on a Cortex-M3.
    #[inline(always)]
    #[allow(unsafe_code)] // the context's start: see the SAFETY comment
    fn start(&self, t: &QueuedTask) -> bool {
        let task = t.task();
        let stack = self.stacks.take(task.stack_size);
        match stack {
            Ok(stack) => {
                // SAFETY: `t` was just popped from the run queue and has not run: it is in
                // this hub's live list until its finish (spawned by `schedule_new`, and
                // only finished by itself once started). This hub is the thread's: hubs are
                // made only as the thread's (`current`), and reached only through `hub()`.
                unsafe { task.context.start(t.node(), self, stack) };
                task.ran.set(true);
                true
            }
            Err(e) => {
                self.fail_start(t, e);
                false
            }
        }
    }

    /// Finishes a greenlet that found no stack for its first run.
    #[cold]
    #[inline(never)]
    fn fail_start(&self, t: &QueuedTask, e: crate::stack::StackError) {
        #[cfg(feature = "std")]
        crate::stack::report_no_stack(|| t.task().describe(), &e);
        let t = t.to_task_ref();
        {
            // The closure's captures drop here, in the loop on main's stack: a blocking call
            // in a `Drop` would run the loop inside itself, and main's wake-up would be lost.
            let _refusing = self.refuse_switches();
            t.discard();
        }
        self.finish_unstarted(&t, FailureKind::NoStack(e));
    }

    /// [`CurrentSlot::resume`](switch::CurrentSlot::resume) with the rare work around it that
    /// the [`slow`] bits ask for.
    ///
    /// # Safety
    ///
    /// The main greenlet runs: this is on its stack, where the hub loop runs.
    #[cold]
    #[inline(never)]
    #[allow(unsafe_code)] // the resume: see the SAFETY comment
    unsafe fn resume_slow(&self, t: QueuedTask) -> Option<QueuedTask> {
        // Kept for the work after the switch: the greenlet may have given its count away.
        let keep = t.to_task_ref();
        let task = keep.task();
        self.beat(task);
        if self.observed.get() {
            crate::events::switched(self, None, Some(task.id));
        }
        #[cfg(feature = "tracing")]
        crate::events::tracing::enter(self, task);
        // SAFETY: main runs, and this is its hub's loop (the caller's contract).
        let resumed = unsafe { self.current.resume(t, &self.loop_context) };
        #[cfg(feature = "tracing")]
        crate::events::tracing::exit(self, task);
        if self.observed.get() {
            crate::events::switched(self, Some(task.id), None);
        }
        resumed
    }

    /// [`Hub::check_events`] without blocking, with its usual answer inline: when no timer is
    /// pending, no I/O is registered, nothing was posted and no switch-out report is owed,
    /// there is nothing to collect, and only the check's bookkeeping is done (a spawned
    /// greenlet joined by main collects once per spawn: the call was ~40 of its ~800
    /// instructions on a Cortex-M3).
    #[inline(always)]
    fn collect_events(&self) {
        let nothing = self.owed_switch_out.get().is_none()
            && self.timers.borrow().is_empty()
            && self.io.borrow().is_empty()
            && !self.remote.has_jobs();
        if nothing {
            self.resumes_since_check.set(0);
            self.checked_since_main.set(true);
        } else {
            self.check_events(false);
        }
    }

    /// Collects posted work, expired timers and I/O readiness. With `may_block` (the run
    /// queue is empty) it may sleep in the poller until one of them comes, or report
    /// `LoopExit` to the main greenlet when none ever can.
    #[inline(never)]
    fn check_events(&self, may_block: bool) {
        if let Some(id) = self.owed_switch_out.take() {
            if self.observed.get() {
                crate::events::switched(self, Some(id), None);
            }
        }
        self.resumes_since_check.set(0);
        self.checked_since_main.set(true);
        self.drain_remote();
        self.fire_timers();
        let has_io = !self.io.borrow().is_empty();
        if has_io {
            self.poll(Some(Duration::ZERO));
        }
        if !may_block || !self.run_queue.is_empty() {
            return;
        }
        // Nothing is runnable: wake `idle()` waiters before sleeping.
        if !self.idle_waiters.borrow().is_empty() {
            loop {
                let waiter = self.idle_waiters.borrow_mut().pop_front();
                match waiter {
                    Some(t) => self.unpark(&t),
                    None => return,
                }
            }
        }
        let deadline = self.timers.borrow().next_deadline();
        match self.remote.prepare_to_sleep() {
            SleepCheck::Posted => {
                self.drain_remote();
                return;
            }
            SleepCheck::Nothing if !self.has_ref_timers() && !has_io => {
                if self.main_waits_for_all.get() {
                    // `wait()`: nothing else can ever run, which is what it waits for.
                    self.unpark(&self.main);
                    return;
                }
                let report = report::loop_exit(self);
                self.interrupt(&self.main, Interrupted::LoopExit(alloc::boxed::Box::new(report)));
                return;
            }
            SleepCheck::Nothing | SleepCheck::Promised => {}
        }
        self.stacks.trim();
        let timeout = deadline.map(|d| d.saturating_duration_since(self.now()));
        // A hub waiting for I/O or a timer is not blocked, however long it waits.
        let beat = self.heartbeat.get();
        if let Some(beat) = beat {
            beat.set_idle(true);
        }
        self.poll(timeout);
        if let Some(beat) = beat {
            beat.set_idle(false);
        }
        self.drain_remote();
        self.fire_timers();
    }

    fn poll(&self, timeout: Option<Duration>) {
        // Events are collected first (the poller is borrowed while it reports them), into a
        // buffer kept between polls so that a poll allocates nothing in the steady state.
        let mut ready = self.ready_events.take();
        let result = self.poller.borrow_mut().poll(timeout, &mut |token, readiness| {
            ready.push((token, readiness));
        });
        if let Err(e) = result {
            panic!("gevent hub: the poller failed: {e}");
        }
        for (token, readiness) in ready.drain(..) {
            io::dispatch(self, Key::from_bits(token.0), readiness);
        }
        self.ready_events.set(ready);
    }

    /// Spawns the jobs posted from other threads; inline for the usual answer, none.
    #[inline]
    fn drain_remote(&self) {
        if self.remote.has_jobs() {
            self.spawn_posted_jobs();
        }
    }

    #[inline(never)]
    fn spawn_posted_jobs(&self) {
        for job in self.remote.take_jobs() {
            crate::greenlet::Builder::new()
                .name("posted job")
                .spawn_untracked(job.posted_at, job.run);
        }
    }

    // --- idle and shutdown ----------------------------------------------------------------

    pub(crate) fn idle(&self) -> Result<(), Interrupted> {
        let cur = self.current();
        let key = self.idle_waiters.borrow_mut().push_back(cur.clone());
        let result = self.park(WaitKind::Idle);
        if result.is_err() {
            self.idle_waiters.borrow_mut().remove(key);
        }
        result
    }

    /// Kills every live greenlet and runs them until they have all returned, so that their
    /// destructors run. Called by the main greenlet.
    pub(crate) fn shutdown(&self) {
        let main = self.main.task();
        main.shield_depth.set(main.shield_depth.get() + 1);
        loop {
            let victims = self.live_greenlets();
            if victims.is_empty() {
                break;
            }
            for v in &victims {
                self.kill(v);
            }
            let deadline = self.now() + SHUTDOWN_GRACE;
            let mut stuck = false;
            for v in &victims {
                if crate::greenlet::join_task(v, Some(deadline)) != Ok(true) {
                    stuck = true;
                    break;
                }
            }
            if stuck {
                self.abandon_live();
                break;
            }
        }
        main.shield_depth.set(main.shield_depth.get() - 1);
    }

    /// Makes later posts from other threads fail (the hub is going) and hands back the jobs
    /// posted and never run, for the caller to drop or leak.
    #[cfg(feature = "std")]
    pub(crate) fn close_remote(&self) -> Vec<crate::remote::Job> {
        self.remote.close()
    }

    /// Forgets the greenlets that ignored their kill and wait on nothing that can come.
    fn abandon_live(&self) {
        let stuck = self.live_greenlets();
        for t in stuck {
            let task = t.task();
            #[cfg(feature = "std")]
            crate::report::error(format_args!(
                "gevent: at hub shutdown, {} did not return within {:?} of its kill; its stack \
                 and the values on it are leaked",
                task.describe(),
                SHUTDOWN_GRACE
            ));
            task.context.abandon();
            let entry = self.live.remove(task);
            drop(entry); // not its last count: `t` below holds one
            task.state.set(State::Finished);
            if self.observed.get() {
                crate::events::finished(self, task, Some(&FailureKind::Killed));
            }
            task.set_outcome(Some(FailureKind::Killed));
            // Its suspended frames may point into its header and its `Local` values: like its
            // stack, they are never freed.
            core::mem::forget(t);
        }
        while let Some(t) = self.run_queue.pop() {
            drop(t);
        }
        *self.idle_waiters.borrow_mut() = WaitList::new();
    }

    /// How many greenlets are alive now (started or not, main excluded).
    pub(crate) fn live_count(&self) -> usize {
        self.live.len()
    }

    /// The greenlets alive now (started or not, main excluded).
    pub(crate) fn live_greenlets(&self) -> Vec<TaskRef> {
        self.live.to_vec()
    }
}

/// Refuses blocking calls while event callbacks run; see [`Hub::refuse_switches`].
pub(crate) struct RefuseSwitches<'a> {
    hub: &'a Hub,
    was: bool,
}

impl Drop for RefuseSwitches<'_> {
    fn drop(&mut self) {
        self.hub.in_callback.set(self.was);
    }
}
