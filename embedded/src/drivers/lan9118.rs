//! A driver for the SMSC LAN9118 (and its register-compatible LAN9220) Ethernet
//! controller, the NIC QEMU emulates on the `mps2-an385`/`mps2-an386` boards (at
//! [`MPS2_BASE`]), as a smoltcp [`Device`].
//!
//! The chip keeps received frames and frames to send in on-chip FIFOs reached through a few
//! 32-bit registers, so the driver needs no DMA memory: [`Device::receive`] copies the next
//! frame out of the receive FIFO into a buffer of the driver, and a transmit token copies its
//! frame into the transmit FIFO. Nothing is allocated.
//!
//! It is polled (smoltcp asks it for frames whenever the hub drives the interface) unless
//! [`enable_receive_interrupt`](Lan9118::enable_receive_interrupt) turns on the chip's
//! receive interrupt, whose handler's only task is to wake the hub: see that method for how
//! a firmware wires it.
//!
//! Register accesses are volatile reads and writes at fixed addresses, hence this module's
//! `unsafe`: [`Lan9118::new`] takes the base address, and its contract (the address is the
//! chip's and nothing else uses it) is what every access rests on.

#![allow(unsafe_code)]

use core::fmt;

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// Where the LAN9118 sits on the MPS2 FPGA images (AN385, AN386), QEMU's included.
pub const MPS2_BASE: usize = 0x4020_0000;

/// The interrupt line (NVIC number) of the LAN9118 on the MPS2 FPGA images (AN385, AN386),
/// QEMU's included.
pub const MPS2_IRQ: u16 = 13;

/// The largest frame the driver passes: an Ethernet frame with a VLAN tag and its FCS fits.
const FRAME: usize = 1536;

/// Bytes of a frame on the wire beyond what smoltcp sees: the FCS the chip appends on receive.
const FCS: usize = 4;

// Register offsets from the base (LAN9118 datasheet, section 5).
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const ID_REV: usize = 0x50;
const IRQ_CFG: usize = 0x54;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

/// What BYTE_TEST reads on a LAN9118 in 32-bit mode, whatever the bus's byte order.
const BYTE_TEST_VALUE: u32 = 0x8765_4321;

const HW_CFG_SRST: u32 = 1 << 0;
/// Must be written as one (datasheet).
const HW_CFG_MBO: u32 = 1 << 20;
/// 5 KB of the 16 KB FIFO memory for transmit data, the rest for receive: the reset value.
const HW_CFG_TX_FIFO_5K: u32 = 5 << 16;
const PMT_CTRL_READY: u32 = 1 << 0;
const TX_CFG_TX_ON: u32 = 1 << 1;
/// Lets the transmit status FIFO overrun: the driver does not read statuses, and without this
/// a full status FIFO stops transmission.
const TX_CFG_TXSAO: u32 = 1 << 2;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
const RX_STS_ERROR: u32 = 1 << 15;

/// IRQ_CFG: the interrupt pin is driven (push-pull), active high, and enabled.
const IRQ_CFG_TYPE_PUSH_PULL: u32 = 1 << 0;
const IRQ_CFG_POL_HIGH: u32 = 1 << 4;
const IRQ_CFG_EN: u32 = 1 << 8;
/// INT_STS/INT_EN: the receive status FIFO holds more statuses than its level (FIFO_INT's
/// low byte, 0 at reset): a frame has arrived.
const INT_RSFL: u32 = 1 << 3;

const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_MII_ACC: u32 = 6;
const MAC_MII_DATA: u32 = 7;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_FDPX: u32 = 1 << 20;
/// Passes every multicast frame up (IPv6 neighbour discovery, mDNS), leaving filtering to
/// smoltcp instead of programming the hash filter.
const MAC_CR_MCPAS: u32 = 1 << 19;
const MII_BUSY: u32 = 1 << 0;
/// The internal PHY's address on the MII bus.
const PHY_ADDRESS: u32 = 1;
const PHY_BASIC_STATUS: u32 = 1;
const PHY_LINK_UP: u32 = 1 << 2;

/// How many times a register is read while waiting for the chip before giving up: far more
/// than the datasheet's longest wait (the reset, under 100 µs at 25 MHz bus clock).
const SPINS: u32 = 1_000_000;

/// Why the controller could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lan9118Error {
    /// BYTE_TEST did not read `0x87654321`: no LAN9118 at this address, or a bus in 16-bit
    /// mode.
    NotFound {
        /// What BYTE_TEST read.
        byte_test: u32,
    },
    /// The chip did not finish its reset, or a MAC or PHY register access did not complete.
    Unresponsive {
        /// The step that did not finish.
        step: &'static str,
    },
}

impl fmt::Display for Lan9118Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lan9118Error::NotFound { byte_test } => write!(
                f,
                "no LAN9118 found: BYTE_TEST read {byte_test:#010x}, not {BYTE_TEST_VALUE:#010x}"
            ),
            Lan9118Error::Unresponsive { step } => write!(f, "the LAN9118 did not finish {step}"),
        }
    }
}

impl core::error::Error for Lan9118Error {}

/// The chip's register block.
#[derive(Clone, Copy)]
struct Regs {
    base: usize,
}

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `Lan9118::new`'s contract: `base` is a LAN9118's register block, mapped as
        // device memory, used by nothing else while the driver lives; `offset` is one of the
        // word-aligned register offsets above, all inside the 256-byte block.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// Reads until `done` holds of the value read, at most `SPINS` times.
    fn wait(
        self,
        offset: usize,
        done: impl Fn(u32) -> bool,
        step: &'static str,
    ) -> Result<u32, Lan9118Error> {
        for _ in 0..SPINS {
            let value = self.read(offset);
            if done(value) {
                return Ok(value);
            }
        }
        Err(Lan9118Error::Unresponsive { step })
    }

    fn mac_read(self, register: u32) -> Result<u32, Lan9118Error> {
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | register);
        self.wait(MAC_CSR_CMD, |v| v & MAC_CSR_BUSY == 0, "a MAC register read")?;
        Ok(self.read(MAC_CSR_DATA))
    }

    fn mac_write(self, register: u32, value: u32) -> Result<(), Lan9118Error> {
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | register);
        self.wait(MAC_CSR_CMD, |v| v & MAC_CSR_BUSY == 0, "a MAC register write")?;
        Ok(())
    }

    fn phy_read(self, register: u32) -> Result<u16, Lan9118Error> {
        self.mac_write(MAC_MII_ACC, (PHY_ADDRESS << 11) | (register << 6) | MII_BUSY)?;
        for _ in 0..SPINS {
            if self.mac_read(MAC_MII_ACC)? & MII_BUSY == 0 {
                return Ok(self.mac_read(MAC_MII_DATA)? as u16);
            }
        }
        Err(Lan9118Error::Unresponsive { step: "a PHY register read" })
    }
}

/// A LAN9118 brought up and passing frames: a smoltcp [`Device`] for an Ethernet interface.
pub struct Lan9118 {
    regs: Regs,
    mac: [u8; 6],
    rx: [u8; FRAME],
    tx: [u8; FRAME],
}

impl fmt::Debug for Lan9118 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lan9118")
            .field("base", &format_args!("{:#x}", self.regs.base))
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl Lan9118 {
    /// Resets the controller at `base` and starts it: receive and transmit on, full duplex,
    /// frames for its MAC address (the one the chip loaded from its EEPROM, see
    /// [`mac_address`](Self::mac_address)), broadcast and multicast passed up; interrupts off
    /// (the driver is polled until
    /// [`enable_receive_interrupt`](Self::enable_receive_interrupt)).
    ///
    /// # Safety
    ///
    /// `base` must be the address of a LAN9118's (or LAN9220's) register block, mapped as
    /// device memory in 32-bit mode, and nothing else may access that block while the returned
    /// driver (or anything it hands out) lives: no second driver on the same address, no
    /// interrupt handler touching its registers.
    pub unsafe fn new(base: usize) -> Result<Self, Lan9118Error> {
        let regs = Regs { base };
        let byte_test = regs.read(BYTE_TEST);
        if byte_test != BYTE_TEST_VALUE {
            return Err(Lan9118Error::NotFound { byte_test });
        }
        regs.write(HW_CFG, HW_CFG_SRST);
        regs.wait(HW_CFG, |v| v & HW_CFG_SRST == 0, "its soft reset")?;
        regs.wait(PMT_CTRL, |v| v & PMT_CTRL_READY != 0, "its power-up")?;
        regs.write(HW_CFG, HW_CFG_MBO | HW_CFG_TX_FIFO_5K);
        regs.write(IRQ_CFG, 0);
        regs.write(INT_EN, 0);
        regs.write(INT_STS, u32::MAX);
        regs.write(RX_CFG, 0);
        regs.write(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        let low = regs.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = regs.mac_read(MAC_ADDRH)?.to_le_bytes();
        let mac = [low[0], low[1], low[2], low[3], high[0], high[1]];
        regs.mac_write(MAC_CR, MAC_CR_RXEN | MAC_CR_TXEN | MAC_CR_FDPX | MAC_CR_MCPAS)?;
        Ok(Lan9118 { regs, mac, rx: [0; FRAME], tx: [0; FRAME] })
    }

    /// Turns on the chip's interrupt for received frames: its pin (on the MPS2 boards, NVIC
    /// line [`MPS2_IRQ`]) is raised, level-triggered, while a frame has arrived that
    /// [`acknowledge_receive_interrupt`](Self::acknowledge_receive_interrupt) has not yet been
    /// called for.
    ///
    /// The handler must not touch the chip (see [`new`](Self::new)): it masks its NVIC line,
    /// which the level would otherwise fire again at once, and wakes the hub, say by raising
    /// a [`Signal`](crate::isr::Signal) that a greenlet waits on. Every hub turn drives the
    /// interface, so the wake-up is all it takes. The code that drives the interface then
    /// calls `acknowledge_receive_interrupt` *before* `iface.poll`, which reads every frame
    /// waiting, and unmasks the line after it: a frame that arrives after the acknowledgement
    /// raises the interrupt again, so none waits for the next wake-up of another cause.
    pub fn enable_receive_interrupt(&mut self) {
        self.regs.write(INT_STS, INT_RSFL);
        self.regs.write(INT_EN, INT_RSFL);
        self.regs.write(IRQ_CFG, IRQ_CFG_EN | IRQ_CFG_POL_HIGH | IRQ_CFG_TYPE_PUSH_PULL);
    }

    /// Lowers the receive interrupt (see
    /// [`enable_receive_interrupt`](Self::enable_receive_interrupt)): call it before reading
    /// the frames that raised it.
    pub fn acknowledge_receive_interrupt(&mut self) {
        self.regs.write(INT_STS, INT_RSFL);
    }

    /// The chip's identity and revision (ID_REV: `0x0118_xxxx` for a LAN9118).
    pub fn id_rev(&self) -> u32 {
        self.regs.read(ID_REV)
    }

    /// The MAC address the controller accepts unicast frames for.
    pub fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    /// Makes the controller accept unicast frames for `mac` instead.
    pub fn set_mac_address(&mut self, mac: [u8; 6]) -> Result<(), Lan9118Error> {
        let [a, b, c, d, e, f] = mac;
        self.regs.mac_write(MAC_ADDRL, u32::from_le_bytes([a, b, c, d]))?;
        self.regs.mac_write(MAC_ADDRH, u32::from_le_bytes([e, f, 0, 0]))?;
        self.mac = mac;
        Ok(())
    }

    /// Whether the PHY reports a link.
    pub fn link_up(&self) -> Result<bool, Lan9118Error> {
        Ok(u32::from(self.regs.phy_read(PHY_BASIC_STATUS)?) & PHY_LINK_UP != 0)
    }

    /// Takes the next good frame out of the receive FIFO into `self.rx`; its length without
    /// the FCS. Frames the chip marked bad, and frames too large or too short to be Ethernet,
    /// are read out and dropped.
    fn next_frame(&mut self) -> Option<usize> {
        while (self.regs.read(RX_FIFO_INF) >> 16) & 0xff != 0 {
            let status = self.regs.read(RX_STATUS_FIFO);
            let wire_len = ((status >> 16) & 0x3fff) as usize;
            let words = wire_len.div_ceil(4);
            // Every word of the frame must leave the FIFO, kept or not.
            for i in 0..words {
                let word = self.regs.read(RX_DATA_FIFO).to_le_bytes();
                if let Some(slot) = self.rx.get_mut(i * 4..i * 4 + 4) {
                    slot.copy_from_slice(&word);
                }
            }
            let good = status & RX_STS_ERROR == 0 && (FCS + 14..=FRAME).contains(&wire_len);
            if good {
                return Some(wire_len - FCS);
            }
            debug!("lan9118: dropped a received frame, status {:#x}", status);
        }
        None
    }

    /// Whether the transmit FIFO has room for the largest frame and its two command words.
    fn can_transmit(&self) -> bool {
        (self.regs.read(TX_FIFO_INF) & 0xffff) as usize >= FRAME + 8
    }
}

/// A received frame, held in the driver's receive buffer.
#[derive(Debug)]
pub struct Lan9118RxToken<'a> {
    frame: &'a [u8],
}

impl RxToken for Lan9118RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame in the transmit FIFO.
pub struct Lan9118TxToken<'a> {
    regs: Regs,
    buffer: &'a mut [u8; FRAME],
}

impl fmt::Debug for Lan9118TxToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lan9118TxToken").finish_non_exhaustive()
    }
}

impl TxToken for Lan9118TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp asks for at most the MTU the capabilities give, which is below FRAME.
        let len = len.min(FRAME);
        let result = f(&mut self.buffer[..len]);
        // TX command A: the whole frame in one buffer, no offset, no end alignment; command B:
        // the frame length (and, as the packet tag the status would carry, the length again).
        let length = len as u32;
        self.regs.write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | length);
        self.regs.write(TX_DATA_FIFO, (length << 16) | length);
        for chunk in self.buffer[..len].chunks(4) {
            let mut word = [0; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.regs.write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        result
    }
}

impl Device for Lan9118 {
    type RxToken<'a> = Lan9118RxToken<'a>;
    type TxToken<'a> = Lan9118TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if !self.can_transmit() {
            return None;
        }
        let len = self.next_frame()?;
        let rx = Lan9118RxToken { frame: &self.rx[..len] };
        let tx = Lan9118TxToken { regs: self.regs, buffer: &mut self.tx };
        Some((rx, tx))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        self.can_transmit().then_some(Lan9118TxToken { regs: self.regs, buffer: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // An Ethernet frame without FCS: 1500 bytes of payload and the 14-byte header.
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = None;
        caps
    }
}
