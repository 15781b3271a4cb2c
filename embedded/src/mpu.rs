//! A stack guard from the MPU (ARMv7-M: Cortex-M3, M4, M7): a 32-byte no-access region at the
//! bottom of the running greenlet's stack, moved at each switch, and one at the bottom of the
//! main stack (the hub's), so that an overflow faults instead of writing the memory below.
//!
//! [`StackGuard::enable`] programs MPU regions 6 (main stack) and 7 (running greenlet; the
//! highest-numbered region wins where regions overlap) and installs the switch hook
//! ([`gevent_core::stack::set_resume_hook`]) that moves region 7: one store to `MPU_RBAR` and
//! two barriers per switch. [`StaticStacks::guarded`](crate::StaticStacks::guarded) lays stacks
//! out above aligned guards; [`guard_fault`] tells a MemManage fault handler whether the guard
//! caught an overflow, and whose.
//!
//! This module writes the MPU's and the system control block's registers, hence its
//! `unsafe` code; each write is argued where it is made.
#![allow(unsafe_code)]

use core::ptr;

use gevent_core::stack::StackRegion;

/// `MPU_TYPE`: DREGION (bits 15:8) is how many regions the MPU has, 0 without one.
const MPU_TYPE: *const u32 = 0xe000_ed90 as *const u32;
/// `MPU_CTRL`: ENABLE (bit 0), HFNMIENA (bit 1), PRIVDEFENA (bit 2).
const MPU_CTRL: *mut u32 = 0xe000_ed94 as *mut u32;
/// `MPU_RBAR`: a base address with VALID (bit 4) and a region number selects and moves a region
/// in one store.
const MPU_RBAR: *mut u32 = 0xe000_ed9c as *mut u32;
/// `MPU_RASR`: the selected region's size, permissions and enable bit.
const MPU_RASR: *mut u32 = 0xe000_eda0 as *mut u32;
/// `SHCSR`: MEMFAULTENA (bit 16) makes MPU faults MemManage faults, not HardFaults.
const SHCSR: *mut u32 = 0xe000_ed24 as *mut u32;
/// `CFSR`: its low byte is MMFSR (IACCVIOL 0, DACCVIOL 1, MUNSTKERR 3, MSTKERR 4, MMARVALID 7).
const CFSR: *const u32 = 0xe000_ed28 as *const u32;
/// `MMFAR`: the address a data access violation was at, when MMFSR.MMARVALID says so.
const MMFAR: *const u32 = 0xe000_ed34 as *const u32;
/// `MPU_RNR`: selects the region that `MPU_RBAR` and `MPU_RASR` reads name.
const MPU_RNR: *mut u32 = 0xe000_ed98 as *mut u32;

const RBAR_VALID: u32 = 1 << 4;
/// Region 7 follows the running greenlet; region 6 guards the main stack.
const GREENLET_REGION: u32 = 7;
const MAIN_REGION: u32 = 6;
/// XN, no access for anyone (AP = 0), SIZE = 4 (2^(4+1) = 32 bytes), enabled.
const RASR_GUARD: u32 = (1 << 28) | (4 << 1) | 1;

/// Proof that the MPU stack guard is on: [`StaticStacks::guarded`](crate::StaticStacks::guarded)
/// asks for it.
#[derive(Debug)]
pub struct StackGuard {
    _private: (),
}

/// Why the guard could not be turned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// The chip has no MPU, or one with fewer than 8 regions.
    NoMpu {
        /// The regions it reports (`MPU_TYPE.DREGION`).
        regions: u32,
    },
}

impl core::fmt::Display for GuardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GuardError::NoMpu { regions } => write!(
                f,
                "no MPU stack guard: this chip's MPU has {regions} regions, the guard needs 8"
            ),
        }
    }
}

impl core::error::Error for GuardError {}

impl StackGuard {
    /// Bytes of each guard: the MPU's smallest region.
    pub const BYTES: usize = 32;

    /// Turns the guard on: the main stack's lowest 32 bytes from `main_stack_bottom` (rounded
    /// up to 32; with cortex-m-rt, the address of its `_stack_end` symbol) become inaccessible,
    /// and so do those of each greenlet's stack while it runs. Faults are made MemManage
    /// faults (see [`guard_fault`]). Call it from thread mode before the hub is installed; the
    /// MPU's other regions (0–5) are left to the firmware. It turns the MPU on with PRIVDEFENA
    /// (the default memory map as the background for privileged code), so a firmware that ran
    /// the MPU without that background gets it.
    pub fn enable(main_stack_bottom: usize) -> Result<StackGuard, GuardError> {
        // SAFETY: MPU_TYPE is a read-only register present on every ARMv7-M core (reading 0
        // without an MPU); reading it has no effect.
        let regions = (unsafe { ptr::read_volatile(MPU_TYPE) } >> 8) & 0xff;
        if regions < 8 {
            return Err(GuardError::NoMpu { regions });
        }
        let main_guard = main_stack_bottom.next_multiple_of(Self::BYTES) as u32;
        // SAFETY: regions 6 and 7 become 32-byte no-access regions at the main stack's bottom,
        // which nothing but an overflow of the main stack reaches (the caller names it); the
        // greenlet region starts there too and moves only to guards that `StaticStacks` keeps
        // unused. PRIVDEFENA keeps the default memory map everywhere else, so no access the
        // program makes besides overflows changes meaning. A MemManage handler that is not
        // defined is the default handler, as for HardFault. The barriers make the new map
        // apply to the next instruction.
        unsafe {
            ptr::write_volatile(MPU_RBAR, main_guard | RBAR_VALID | MAIN_REGION);
            ptr::write_volatile(MPU_RASR, RASR_GUARD);
            ptr::write_volatile(MPU_RBAR, main_guard | RBAR_VALID | GREENLET_REGION);
            ptr::write_volatile(MPU_RASR, RASR_GUARD);
            ptr::write_volatile(SHCSR, ptr::read_volatile(SHCSR) | (1 << 16));
            ptr::write_volatile(MPU_CTRL, ptr::read_volatile(MPU_CTRL) | 0b101);
            core::arch::asm!("dsb", "isb", options(nostack, preserves_flags));
        }
        // SAFETY: `follow` writes one MPU register and runs two barriers: it calls nothing in
        // gevent, cannot panic, and makes inaccessible only a guard that `StaticStacks` keeps
        // out of every greenlet's usable stack (or nothing, for a region without a guard).
        unsafe { gevent_core::stack::set_resume_hook(Some(follow)) };
        Ok(StackGuard { _private: () })
    }
}

/// Moves the greenlet guard to the bottom of `region`, the stack about to run.
fn follow(region: &StackRegion) {
    // Not a guarded stack, or a guard the MPU cannot cover exactly (a region's base is a
    // multiple of its size: an unaligned one would be rounded down over memory in use, which
    // any `StackSource` may hand out, `StaticStacks` does not): leave the last guard where it
    // is, on a stack not running.
    let bottom = region.bottom.get();
    if region.guard < StackGuard::BYTES || bottom % StackGuard::BYTES != 0 {
        return;
    }
    // SAFETY: the region's lowest 32 bytes are its guard, 32-byte aligned (checked above),
    // which no code uses; moving the region there revokes access to
    // nothing else, and gives back the previous greenlet's guard bytes, which nothing uses
    // either. The barriers make the move apply before the greenlet's first instruction.
    unsafe {
        ptr::write_volatile(MPU_RBAR, bottom as u32 | RBAR_VALID | GREENLET_REGION);
        core::arch::asm!("dsb", "isb", options(nostack, preserves_flags));
    }
}

/// What the guard caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardFault {
    /// The running greenlet overflowed its stack (the handler can name it with
    /// [`current`](crate::current)).
    Greenlet {
        /// The faulting access's address, when the core recorded one; `None` when the fault
        /// came while pushing an exception frame onto the overflowed stack.
        address: Option<usize>,
    },
    /// The main stack overflowed.
    MainStack {
        /// The faulting access's address.
        address: usize,
    },
}

/// For a MemManage fault handler, after [`guard_fault`] found a greenlet's guard hit at
/// `address`: calls `f` with that greenlet's name (`None` if it has none, or if `address` is
/// not in the running greenlet's guard).
///
/// The hub may not be used from a handler (its functions panic there); this reads it without
/// those checks.
///
/// # Safety
///
/// Call it only from the MemManage handler of a guard fault, and never return to the faulting
/// code (end the program or reset the chip): the code it stopped must not be halfway through
/// changing what this reads, which holds only if it never runs again.
pub unsafe fn with_faulting_greenlet_name<R>(
    address: usize,
    f: impl FnOnce(Option<&str>) -> R,
) -> R {
    // SAFETY: the caller's promise (above) is the one `with_faulting_greenlet` asks for.
    unsafe {
        gevent_core::__private::with_faulting_greenlet(address, |greenlet| {
            f(greenlet.and_then(|g| g.name))
        })
    }
}

/// For a MemManage fault handler: whether the fault is the stack guard's, and which stack
/// overflowed. `None` for faults of other causes (other MPU regions).
pub fn guard_fault() -> Option<GuardFault> {
    // SAFETY: reads of the fault status registers, and of regions 6's and 7's bases through
    // RNR; writing RNR only changes which region later RBAR/RASR accesses name, and every other
    // access this module makes selects its region in the RBAR store itself.
    let (mmfsr, address, main_guard, greenlet_guard) = unsafe {
        let mmfsr = ptr::read_volatile(CFSR) & 0xff;
        let address = ptr::read_volatile(MMFAR) as usize;
        ptr::write_volatile(MPU_RNR, MAIN_REGION);
        let main_guard = (ptr::read_volatile(MPU_RBAR) & !31) as usize;
        ptr::write_volatile(MPU_RNR, GREENLET_REGION);
        let greenlet_guard = (ptr::read_volatile(MPU_RBAR) & !31) as usize;
        (mmfsr, address, main_guard, greenlet_guard)
    };
    let valid = mmfsr & (1 << 7) != 0;
    let within = |guard: usize| valid && (guard..guard + StackGuard::BYTES).contains(&address);
    if within(main_guard) {
        return Some(GuardFault::MainStack { address });
    }
    if within(greenlet_guard) {
        return Some(GuardFault::Greenlet { address: Some(address) });
    }
    // A push of the exception frame into the guard (MSTKERR) has no address.
    (mmfsr & (1 << 4) != 0).then_some(GuardFault::Greenlet { address: None })
}
