//! VMware's guest RPC ("RPCI") over the backdoor I/O port: how a guest on ESXi reads and
//! writes its VM's `guestinfo.*` keys without VMware Tools.
//!
//! The backdoor is an x86 `in` from port 0x5658 with the magic 0x564D5868 ("VMXh") in
//! eax, a command in ecx and arguments in the other registers; the hypervisor intercepts
//! it and answers in the same registers. Guest RPC is command 0x1E ("message"), whose
//! subcommand (ecx's high half) walks a channel through open, send size, send payload
//! (4 bytes per call), receive size, receive payload (4 bytes per call), receive status
//! and close. Channels opened with the protocol number 0x49435052 ("RPCI") carry the
//! `info-get` / `info-set` texts that `vcenter-sim` also speaks (see `platform`).
//!
//! Only the low-bandwidth port is used (no `rep insb/outsb` on 0x5659): guestinfo values
//! are small, the spec is chunked, and four bytes per exit keeps the unsafe part to one
//! instruction.
//!
//! Executing `in` outside a VMware VM, without I/O privilege, kills the process with
//! SIGSEGV; with privilege it reads garbage. So nothing here touches the port unless
//! `detect` says VMware (CPUID hypervisor signature or DMI vendor), and `IoPort::open`
//! then checks the backdoor answers its magic before any RPC.
//!
//! Not the `vmw_backdoor` crate: it reads guestinfo but cannot write it (no `info-set`,
//! which every state report needs), and it assembles its port access from a `.s` file with
//! a C toolchain at build time; one inline `asm!` does here.
//!
//! The protocol is split from the port (`Backdoor`) so the channel logic is testable
//! without a hypervisor: the tests drive it against an in-memory VMX that checks every
//! register the way the real one does.

use std::io;

/// eax of every backdoor call, and ebx of the answer to "get version".
pub const MAGIC: u32 = 0x564D_5868;
/// The low-bandwidth backdoor port.
pub const PORT: u16 = 0x5658;
/// Backdoor command: get version (used as a probe).
pub const CMD_GET_VERSION: u16 = 0x0A;
/// Backdoor command: guest RPC message.
pub const CMD_MESSAGE: u16 = 0x1E;
/// The RPCI protocol number ("RPCI"), ebx of `open`.
pub const RPCI_PROTOCOL: u32 = 0x4943_5052;
/// Flag in ebx of `open`: the host hands back two cookies that authenticate every later
/// call on the channel (esi, edi), so another process cannot speak on it.
pub const FLAG_COOKIE: u32 = 0x8000_0000;

/// Subcommands of `CMD_MESSAGE` (ecx's high half).
pub mod sub {
    pub const OPEN: u16 = 0;
    pub const SEND_SIZE: u16 = 1;
    pub const SEND_PAYLOAD: u16 = 2;
    pub const RECV_SIZE: u16 = 3;
    pub const RECV_PAYLOAD: u16 = 4;
    pub const RECV_STATUS: u16 = 5;
    pub const CLOSE: u16 = 6;
}

/// Status bits in ecx's high half of a message answer.
pub mod status {
    pub const SUCCESS: u16 = 0x0001;
    /// A reply is waiting to be received.
    pub const DORECV: u16 = 0x0002;
    /// The VM was checkpointed (suspended, migrated, cloned) meanwhile: start over.
    pub const CHECKPOINT: u16 = 0x0010;
}

/// Largest reply accepted (guestinfo values are far smaller).
pub const MAX_REPLY: u32 = 1 << 20;

/// The registers of one backdoor call, in and out (ebp is only used by the
/// high-bandwidth port, which this module does not use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub esi: u32,
    pub edi: u32,
}

/// One backdoor call: registers in, registers out.
pub trait Backdoor {
    fn call(&mut self, r: Regs) -> Regs;
}

/// The registers of a message subcommand on channel `chan`.
pub fn message_regs(subcommand: u16, chan: u16, ebx: u32, cookies: (u32, u32)) -> Regs {
    Regs {
        eax: MAGIC,
        ebx,
        ecx: (u32::from(subcommand) << 16) | u32::from(CMD_MESSAGE),
        edx: (u32::from(chan) << 16) | u32::from(PORT),
        esi: cookies.0,
        edi: cookies.1,
    }
}

/// The status half of an answer.
pub fn answer_status(r: &Regs) -> u16 {
    (r.ecx >> 16) as u16
}

/// The request bytes as the little-endian words `SEND_PAYLOAD` carries; the last word is
/// zero-padded (the host takes only `SEND_SIZE` bytes).
pub fn payload_words(data: &[u8]) -> impl Iterator<Item = u32> + '_ {
    data.chunks(4).map(|c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        u32::from_le_bytes(w)
    })
}

/// Appends the bytes of one received word, without going past a reply of `total` bytes.
pub fn push_word(out: &mut Vec<u8>, word: u32, total: usize) {
    let n = total.saturating_sub(out.len()).min(4);
    out.extend_from_slice(&word.to_le_bytes()[..n]);
}

fn proto(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("guest RPC: {what}"))
}

/// An open RPCI channel.
pub struct Channel<B: Backdoor> {
    bd: B,
    id: u16,
    cookies: (u32, u32),
}

impl<B: Backdoor> Channel<B> {
    pub fn open(mut bd: B) -> io::Result<Channel<B>> {
        let r = bd.call(message_regs(
            sub::OPEN,
            0,
            RPCI_PROTOCOL | FLAG_COOKIE,
            (0, 0),
        ));
        if answer_status(&r) & status::SUCCESS == 0 {
            return Err(proto(
                "the host refused to open an RPCI channel".to_string(),
            ));
        }
        Ok(Channel {
            bd,
            id: (r.edx >> 16) as u16,
            cookies: (r.esi, r.edi),
        })
    }

    /// One subcommand on this channel; fails unless the host answers SUCCESS.
    fn call(&mut self, subcommand: u16, ebx: u32, what: &str) -> io::Result<Regs> {
        let r = self
            .bd
            .call(message_regs(subcommand, self.id, ebx, self.cookies));
        let s = answer_status(&r);
        if s & status::SUCCESS == 0 {
            let why = if s & status::CHECKPOINT != 0 {
                " (the VM was checkpointed meanwhile)"
            } else {
                ""
            };
            return Err(proto(format!("{what} failed{why}")));
        }
        Ok(r)
    }

    /// Sends one request and returns the host's reply.
    pub fn send(&mut self, request: &[u8]) -> io::Result<Vec<u8>> {
        let len = u32::try_from(request.len())
            .map_err(|_| proto("request larger than 4 GiB".to_string()))?;
        self.call(sub::SEND_SIZE, len, "send size")?;
        for w in payload_words(request) {
            self.call(sub::SEND_PAYLOAD, w, "send payload")?;
        }
        let r = self.call(sub::RECV_SIZE, 0, "receive size")?;
        if answer_status(&r) & status::DORECV == 0 {
            return Ok(Vec::new());
        }
        // The host announces what it sends next in edx's high half.
        if (r.edx >> 16) as u16 != sub::SEND_SIZE {
            return Err(proto(format!(
                "expected a reply size, the host sent type {}",
                r.edx >> 16
            )));
        }
        if r.ebx > MAX_REPLY {
            return Err(proto(format!("reply of {} bytes is too large", r.ebx)));
        }
        let total = r.ebx as usize;
        let mut reply = Vec::with_capacity(total);
        while reply.len() < total {
            // ebx acknowledges the previous word.
            let r = self.call(
                sub::RECV_PAYLOAD,
                u32::from(status::SUCCESS),
                "receive payload",
            )?;
            if (r.edx >> 16) as u16 != sub::SEND_PAYLOAD {
                return Err(proto(format!(
                    "expected reply data, the host sent type {}",
                    r.edx >> 16
                )));
            }
            push_word(&mut reply, r.ebx, total);
        }
        self.call(
            sub::RECV_STATUS,
            u32::from(status::SUCCESS),
            "receive status",
        )?;
        Ok(reply)
    }

    /// Closes the channel and hands the port back.
    pub fn close(mut self) -> B {
        // Nothing to do when the host already forgot the channel (after a checkpoint).
        let _ = self.call(sub::CLOSE, 0, "close");
        self.bd
    }
}

/// What identifies this machine, read without touching the backdoor.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The 12-byte hypervisor vendor signature of CPUID leaf 0x40000000, when the CPU
    /// says it runs under a hypervisor.
    pub cpuid: Option<[u8; 12]>,
    /// /sys/class/dmi/id/sys_vendor.
    pub dmi_vendor: Option<String>,
}

impl Identity {
    pub fn read() -> Identity {
        Identity {
            cpuid: hypervisor_signature(),
            dmi_vendor: std::fs::read_to_string("/sys/class/dmi/id/sys_vendor").ok(),
        }
    }

    /// A VMware VM: the CPUID signature, or the DMI vendor when the VM hides the
    /// hypervisor from CPUID (`hypervisor.cpuid.v0 = FALSE`) but keeps the backdoor.
    pub fn is_vmware(&self) -> bool {
        self.cpuid.as_ref() == Some(b"VMwareVMware")
            || self.dmi_vendor.as_deref().map(str::trim) == Some("VMware, Inc.")
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpuid = match &self.cpuid {
            Some(s) => String::from_utf8_lossy(s)
                .trim_end_matches('\0')
                .to_string(),
            None => "none".into(),
        };
        let dmi = self
            .dmi_vendor
            .as_deref()
            .map(str::trim)
            .unwrap_or("unknown");
        write!(f, "hypervisor signature: {cpuid:?}, DMI vendor: {dmi:?}")
    }
}

#[cfg(target_arch = "x86_64")]
fn hypervisor_signature() -> Option<[u8; 12]> {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86_64 CPU and has no side effect.
    #[allow(unused_unsafe)] // safe in newer Rust, unsafe in older
    let leaf1 = unsafe { __cpuid(1) };
    // ecx bit 31: running under a hypervisor, which then answers leaf 0x40000000.
    if leaf1.ecx & (1 << 31) == 0 {
        return None;
    }
    #[allow(unused_unsafe)]
    let v = unsafe { __cpuid(0x4000_0000) };
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&v.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&v.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&v.edx.to_le_bytes());
    Some(sig)
}

#[cfg(not(target_arch = "x86_64"))]
fn hypervisor_signature() -> Option<[u8; 12]> {
    None
}

/// The real backdoor port. Only `open` makes one, after detection.
pub struct IoPort {
    _private: (),
}

impl IoPort {
    /// Opens the backdoor of this VMware VM, or says why not. Never executes `in` on a
    /// machine that is not a VMware VM.
    pub fn open() -> io::Result<IoPort> {
        let id = Identity::read();
        if !id.is_vmware() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("not a VMware VM ({id})"),
            ));
        }
        Self::open_detected()
    }

    #[cfg(target_arch = "x86_64")]
    fn open_detected() -> io::Result<IoPort> {
        // VMware lets CPL 3 reach the backdoor without I/O privilege unless the VM sets
        // monitor_control.restrict_backdoor; as root (pid 1) ask for it anyway, so the
        // `in` passes the TSS bitmap and is intercepted as an ordinary port access.
        // SAFETY: ioperm only changes this thread's I/O permission bitmap.
        if unsafe { libc::ioperm(libc::c_ulong::from(PORT), 1, 1) } != 0 {
            let e = io::Error::last_os_error();
            eprintln!("tether: ioperm(0x{PORT:x}): {e}; trying the backdoor without it");
        }
        let mut port = IoPort { _private: () };
        let r = port.call(Regs {
            eax: MAGIC,
            ebx: !MAGIC,
            ecx: u32::from(CMD_GET_VERSION),
            edx: u32::from(PORT),
            ..Regs::default()
        });
        if r.ebx != MAGIC {
            return Err(io::Error::other(
                "the VMware backdoor does not answer (is monitor_control.restrict_backdoor set?)",
            ));
        }
        Ok(port)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn open_detected() -> io::Result<IoPort> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the VMware backdoor transport is built for x86_64 only",
        ))
    }
}

impl Backdoor for IoPort {
    #[cfg(target_arch = "x86_64")]
    fn call(&mut self, r: Regs) -> Regs {
        let (mut eax, mut ebx, mut ecx, mut edx, mut esi, mut edi) = (
            u64::from(r.eax),
            u64::from(r.ebx),
            u64::from(r.ecx),
            u64::from(r.edx),
            u64::from(r.esi),
            u64::from(r.edi),
        );
        // SAFETY: an IoPort exists only after `open` saw a VMware VM whose backdoor
        // answered, so this `in` is intercepted by the hypervisor (not a real device
        // access nor a fault). It reads and writes only the registers named here; rbx
        // is reserved by LLVM, so it is swapped in and out around the instruction.
        unsafe {
            std::arch::asm!(
                "xchg {bx}, rbx",
                "in eax, dx",
                "xchg {bx}, rbx",
                bx = inout(reg) ebx,
                inout("rax") eax,
                inout("rcx") ecx,
                inout("rdx") edx,
                inout("rsi") esi,
                inout("rdi") edi,
                options(nostack),
            );
        }
        // The host writes 32-bit registers; the upper halves mean nothing.
        Regs {
            eax: eax as u32,
            ebx: ebx as u32,
            ecx: ecx as u32,
            edx: edx as u32,
            esi: esi as u32,
            edi: edi as u32,
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn call(&mut self, _r: Regs) -> Regs {
        unreachable!("IoPort::open fails on this architecture")
    }
}

/// Guest RPC on the backdoor, reopening the channel once when the host lost it (after a
/// checkpoint, a vMotion or an instant clone the old channel is gone).
pub struct Rpci<B: Backdoor> {
    chan: Option<Channel<B>>,
    /// Kept while no channel is open, to open the next one.
    port: Option<B>,
}

impl<B: Backdoor> Rpci<B> {
    pub fn open(port: B) -> io::Result<Rpci<B>> {
        Ok(Rpci {
            chan: Some(Channel::open(port)?),
            port: None,
        })
    }

    /// Sends `request` and returns the reply text.
    pub fn rpc(&mut self, request: &str) -> io::Result<String> {
        let mut last = None;
        for _ in 0..2 {
            let mut chan = match (self.chan.take(), self.port.take()) {
                (Some(c), _) => c,
                (None, Some(p)) => Channel::open(p)?,
                (None, None) => unreachable!("Rpci keeps its port or a channel"),
            };
            match chan.send(request.as_bytes()) {
                Ok(reply) => {
                    self.chan = Some(chan);
                    return text(reply);
                }
                Err(e) => {
                    self.port = Some(chan.close());
                    last = Some(e);
                }
            }
        }
        Err(last.expect("the loop ran"))
    }
}

/// The reply as text (some hosts end it with a NUL).
fn text(mut reply: Vec<u8>) -> io::Result<String> {
    if reply.last() == Some(&0) {
        reply.pop();
    }
    String::from_utf8(reply).map_err(|e| proto(format!("reply is not UTF-8: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The one way a unit test of this crate declines to run: under `CI=true` it fails
    /// with `why`; elsewhere it prints "SKIPPED <test>: <why>" and the caller returns.
    pub(crate) fn cannot_run(why: &str) {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let ci = std::env::var("CI").as_deref() == Ok("true");
        assert!(!ci, "{test} cannot run under CI=true: {why}");
        eprintln!("SKIPPED {test}: {why}");
    }

    #[test]
    fn message_registers() {
        let r = message_regs(sub::RECV_PAYLOAD, 0x1234, 1, (0xaaaa, 0xbbbb));
        assert_eq!(r.eax, 0x564D_5868);
        assert_eq!(r.ecx, 0x0004_001E);
        assert_eq!(r.edx, 0x1234_5658);
        assert_eq!((r.ebx, r.esi, r.edi), (1, 0xaaaa, 0xbbbb));
        assert_eq!(
            message_regs(sub::OPEN, 0, RPCI_PROTOCOL | FLAG_COOKIE, (0, 0)).ebx,
            0xC943_5052
        );
        assert_eq!(MAGIC.to_be_bytes(), *b"VMXh");
        assert_eq!(RPCI_PROTOCOL.to_be_bytes(), *b"ICPR");
        assert_eq!(&RPCI_PROTOCOL.to_le_bytes(), b"RPCI");
    }

    #[test]
    fn payload_is_packed_little_endian_and_padded() {
        let w: Vec<u32> = payload_words(b"info-get").collect();
        assert_eq!(
            w,
            vec![u32::from_le_bytes(*b"info"), u32::from_le_bytes(*b"-get")]
        );
        let w: Vec<u32> = payload_words(b"abcdef").collect();
        assert_eq!(w, vec![0x6463_6261, 0x0000_6665]);
        assert_eq!(payload_words(b"").count(), 0);
        let mut out = Vec::new();
        for w in payload_words(b"1 hello") {
            push_word(&mut out, w, 7);
        }
        assert_eq!(out, b"1 hello");
        // Never past the announced size, whatever the padding holds.
        let mut out = b"ab".to_vec();
        push_word(&mut out, 0xffff_ffff, 3);
        assert_eq!(out, vec![b'a', b'b', 0xff]);
    }

    #[test]
    fn replies_are_text_without_trailing_nul() {
        assert_eq!(text(b"1 v\0".to_vec()).unwrap(), "1 v");
        assert_eq!(
            text(b"0 No value found".to_vec()).unwrap(),
            "0 No value found"
        );
        assert!(text(vec![0xff, 0xfe]).is_err());
    }

    /// The host side of the message protocol, checking every register as a VMX does, with
    /// an RPCI handler for info-get/info-set.
    #[derive(Default)]
    struct FakeVmx {
        guestinfo: HashMap<String, String>,
        chans: HashMap<u16, Chan>,
        next_id: u16,
        calls: usize,
        /// Lose every channel at this call number (a checkpoint).
        checkpoint_at: Option<usize>,
    }

    #[derive(Default)]
    struct Chan {
        cookies: (u32, u32),
        req_len: usize,
        req: Vec<u8>,
        reply: Vec<u8>,
        sent: usize,
    }

    fn answer(r: Regs, st: u16) -> Regs {
        Regs {
            ecx: (u32::from(st) << 16) | (r.ecx & 0xffff),
            ..r
        }
    }

    impl FakeVmx {
        fn handle(&mut self, req: &[u8]) -> Vec<u8> {
            let req = String::from_utf8(req.to_vec()).unwrap();
            if let Some(k) = req.strip_prefix("info-get ") {
                match self.guestinfo.get(k) {
                    Some(v) => format!("1 {v}").into_bytes(),
                    None => b"0 No value found".to_vec(),
                }
            } else if let Some(kv) = req.strip_prefix("info-set ") {
                let (k, v) = kv.split_once(' ').unwrap();
                self.guestinfo.insert(k.into(), v.into());
                b"1 ".to_vec()
            } else {
                b"0 Unknown command".to_vec()
            }
        }
    }

    impl Backdoor for &mut FakeVmx {
        fn call(&mut self, r: Regs) -> Regs {
            self.calls += 1;
            if self.checkpoint_at == Some(self.calls) {
                self.chans.clear();
            }
            assert_eq!(r.eax, MAGIC);
            assert_eq!(r.ecx & 0xffff, u32::from(CMD_MESSAGE));
            assert_eq!(r.edx & 0xffff, u32::from(PORT));
            let subcommand = (r.ecx >> 16) as u16;
            let id = (r.edx >> 16) as u16;
            if subcommand == sub::OPEN {
                assert_eq!(r.ebx, RPCI_PROTOCOL | FLAG_COOKIE);
                self.next_id += 1;
                let id = self.next_id;
                let cookies = (0x1000 + u32::from(id), 0x2000 + u32::from(id));
                self.chans.insert(
                    id,
                    Chan {
                        cookies,
                        ..Chan::default()
                    },
                );
                return Regs {
                    edx: u32::from(id) << 16,
                    esi: cookies.0,
                    edi: cookies.1,
                    ..answer(r, status::SUCCESS)
                };
            }
            let Some(mut c) = self.chans.remove(&id) else {
                return answer(r, status::CHECKPOINT);
            };
            if (r.esi, r.edi) != c.cookies {
                self.chans.insert(id, c);
                return answer(r, 0);
            }
            let out = match subcommand {
                sub::SEND_SIZE => {
                    c.req_len = r.ebx as usize;
                    c.req.clear();
                    answer(r, status::SUCCESS)
                }
                sub::SEND_PAYLOAD => {
                    push_word(&mut c.req, r.ebx, c.req_len);
                    if c.req.len() == c.req_len {
                        c.reply = self.handle(&c.req);
                        c.sent = 0;
                    }
                    answer(r, status::SUCCESS)
                }
                sub::RECV_SIZE => Regs {
                    ebx: c.reply.len() as u32,
                    edx: (u32::from(sub::SEND_SIZE) << 16) | u32::from(PORT),
                    ..answer(r, status::SUCCESS | status::DORECV)
                },
                sub::RECV_PAYLOAD => {
                    assert_eq!(r.ebx, u32::from(status::SUCCESS));
                    let mut w = [0u8; 4];
                    let chunk = &c.reply[c.sent..(c.sent + 4).min(c.reply.len())];
                    w[..chunk.len()].copy_from_slice(chunk);
                    c.sent += chunk.len();
                    Regs {
                        ebx: u32::from_le_bytes(w),
                        edx: (u32::from(sub::SEND_PAYLOAD) << 16) | u32::from(PORT),
                        ..answer(r, status::SUCCESS)
                    }
                }
                sub::RECV_STATUS => {
                    assert_eq!(c.sent, c.reply.len(), "status before the whole reply");
                    answer(r, status::SUCCESS)
                }
                sub::CLOSE => return answer(r, status::SUCCESS),
                other => panic!("unknown subcommand {other}"),
            };
            self.chans.insert(id, c);
            out
        }
    }

    #[test]
    fn info_get_and_set_round_trip_through_the_message_protocol() {
        let mut vmx = FakeVmx::default();
        vmx.guestinfo.insert(
            "guestinfo.vch.spec".into(),
            r#"{"cmd":["echo","hi"]}"#.into(),
        );
        let mut rpc = Rpci::open(&mut vmx).unwrap();
        assert_eq!(
            rpc.rpc("info-get guestinfo.vch.spec").unwrap(),
            r#"1 {"cmd":["echo","hi"]}"#
        );
        assert_eq!(
            rpc.rpc("info-get guestinfo.nope").unwrap(),
            "0 No value found"
        );
        // Odd lengths: the last word is padded and the padding ignored.
        assert_eq!(
            rpc.rpc("info-set guestinfo.vch.state running").unwrap(),
            "1 "
        );
        assert_eq!(vmx.guestinfo["guestinfo.vch.state"], "running");
        // Every request went over the one channel.
        assert_eq!(vmx.next_id, 1);
    }

    #[test]
    fn a_lost_channel_is_reopened_and_the_request_sent_again() {
        let mut vmx = FakeVmx {
            checkpoint_at: Some(4),
            ..FakeVmx::default()
        };
        vmx.guestinfo.insert("guestinfo.k".into(), "v".into());
        let mut rpc = Rpci::open(&mut vmx).unwrap();
        assert_eq!(rpc.rpc("info-get guestinfo.k").unwrap(), "1 v");
        assert_eq!(vmx.next_id, 2, "a second channel was opened");
    }

    #[test]
    fn a_refused_open_is_an_error() {
        struct Dead;
        impl Backdoor for Dead {
            fn call(&mut self, r: Regs) -> Regs {
                Regs { ecx: 0, ..r }
            }
        }
        let err = Rpci::open(Dead).err().unwrap();
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[test]
    fn vmware_is_recognised_by_cpuid_or_dmi() {
        let vmw = Identity {
            cpuid: Some(*b"VMwareVMware"),
            dmi_vendor: None,
        };
        assert!(vmw.is_vmware());
        let dmi_only = Identity {
            cpuid: None,
            dmi_vendor: Some("VMware, Inc.\n".into()),
        };
        assert!(dmi_only.is_vmware());
        let kvm = Identity {
            cpuid: Some(*b"KVMKVMKVM\0\0\0"),
            dmi_vendor: Some("QEMU\n".into()),
        };
        assert!(!kvm.is_vmware());
        assert!(!Identity::default().is_vmware());
    }

    /// This machine is not a VMware VM: opening the port must say so, without executing
    /// `in` (which would kill the test process with SIGSEGV).
    #[test]
    fn opening_the_port_here_refuses_without_touching_it() {
        let id = Identity::read();
        eprintln!("this machine: {id}");
        if id.is_vmware() {
            return cannot_run("this machine is a VMware VM");
        }
        let err = IoPort::open().err().expect("not a VMware VM");
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().starts_with("not a VMware VM"), "{err}");
    }
}
