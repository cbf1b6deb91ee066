//! The control channel on serial port 1 (network-backed: the VM connects to the VCH).
//!
//! A serial line has no framing and may be reconnected mid-stream, so every frame starts
//! with a magic and a reader resynchronises by scanning for it; the VCH asks `Who` on
//! every new connection and the tether answers `Hello` with its container id.
//!
//! Frame: `b"VC"`, type (u8), session (u32 BE), length (u32 BE), payload.

pub const MAGIC: &[u8; 2] = b"VC";
const HEADER: usize = 2 + 1 + 4 + 4;
/// Larger frames are garbage (a torn stream), not data.
pub const MAX_PAYLOAD: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// tether → VCH: payload is the container id.
    Hello = 1,
    /// VCH → tether: please say Hello.
    Who = 2,
    /// VCH → tether: start an exec in `session`; payload is `ExecRequest` JSON.
    Exec = 3,
    /// tether → VCH: output of `session`; payload is the stream byte (1 stdout, 2 stderr)
    /// followed by the data.
    Out = 4,
    /// tether → VCH: `session` ended; payload is the exit code, `\n`, an error text.
    Exit = 5,
    /// VCH → tether: deliver a signal (payload: its number) to `session` (0 = the
    /// container's main process).
    Signal = 6,
    /// VCH → tether: bytes for the stdin of `session` (0 = the main process).
    Stdin = 7,
    /// VCH → tether: the client's stdin ended; close the stdin of `session` (EOF). A TTY's
    /// stdin stays open (the terminal is not closed by one client going away).
    StdinClose = 8,
    /// VCH → tether: new window size of `session`'s TTY; payload is rows and columns,
    /// u16 BE each. Ignored for a session without a TTY.
    Resize = 9,
    /// tether → VCH: this many bytes (u32 BE) of `Stdin` frames for `session` are done with
    /// (written into the process's stdin, or discarded). The VCH keeps at most
    /// [`STDIN_WINDOW`] bytes unacknowledged per session, so a process that does not read
    /// holds the client back instead of filling the VM's memory.
    StdinAck = 10,
    /// VCH → tether: a parked instant clone may run its process now (`docker start`).
    /// (Numbered apart from the stdio frames so the two sets can grow independently.)
    Start = 20,

    // --- container operations (top, stats, archive); see `crate::ops` ---
    /// VCH → tether: an `ops::OpsRequest` (JSON) for `session`.
    Request = 32,
    /// tether → VCH: the JSON answer of `session` (`ops::Reply`).
    Reply = 33,
    /// Either way: bytes of `session`'s stream (a tar); an empty payload ends it.
    Data = 34,
    /// tether → VCH: the tether consumed one `Data` frame of `session` (flow control for
    /// streams into the container).
    Credit = 35,
    /// tether → VCH: `session`'s outgoing stream ended; payload empty (complete) or an error.
    Done = 36,
    /// VCH → tether: nobody reads `session` any more; stop producing it.
    Cancel = 37,
}

/// Unacknowledged stdin bytes the VCH may have in flight per session.
pub const STDIN_WINDOW: usize = 256 * 1024;

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Who,
            3 => Kind::Exec,
            4 => Kind::Out,
            5 => Kind::Exit,
            6 => Kind::Signal,
            7 => Kind::Stdin,
            8 => Kind::StdinClose,
            9 => Kind::Resize,
            10 => Kind::StdinAck,
            20 => Kind::Start,
            // container operations
            32 => Kind::Request,
            33 => Kind::Reply,
            34 => Kind::Data,
            35 => Kind::Credit,
            36 => Kind::Done,
            37 => Kind::Cancel,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub session: u32,
    pub payload: Vec<u8>,
}

/// What an `Exec` frame asks for.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// Run on a pseudo-terminal: output is one stream (stdout), `Resize` applies.
    pub tty: bool,
    /// The session's stdin receives `Stdin` frames (else it is /dev/null).
    pub attach_stdin: bool,
    /// Initial window size `[rows, cols]` of the TTY.
    pub console_size: Option<[u16; 2]>,
}

/// The payload of a `Resize` frame.
pub fn resize_payload(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = rows.to_be_bytes().to_vec();
    p.extend_from_slice(&cols.to_be_bytes());
    p
}

/// Rows and columns from a `Resize` payload; `None` when it is not 4 bytes.
pub fn parse_resize(p: &[u8]) -> Option<(u16, u16)> {
    match p {
        [r0, r1, c0, c1] => Some((
            u16::from_be_bytes([*r0, *r1]),
            u16::from_be_bytes([*c0, *c1]),
        )),
        _ => None,
    }
}

impl Frame {
    pub fn new(kind: Kind, session: u32, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            kind,
            session,
            payload: payload.into(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Takes every complete frame off the front of `buf`, skipping garbage.
pub fn decode(buf: &mut Vec<u8>) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        // Resynchronise on the magic.
        match buf[at..].windows(2).position(|w| w == MAGIC) {
            Some(p) => at += p,
            None => {
                // Keep a possible first magic byte at the very end.
                at = buf
                    .len()
                    .saturating_sub(usize::from(buf.last() == Some(&MAGIC[0])));
                break;
            }
        }
        if buf.len() - at < HEADER {
            break;
        }
        let h = &buf[at..at + HEADER];
        let kind = Kind::from_u8(h[2]);
        let session = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
        let len = u32::from_be_bytes([h[7], h[8], h[9], h[10]]) as usize;
        let Some(kind) = kind.filter(|_| len <= MAX_PAYLOAD) else {
            at += 1; // not a frame after all
            continue;
        };
        if buf.len() - at < HEADER + len {
            break;
        }
        frames.push(Frame {
            kind,
            session,
            payload: buf[at + HEADER..at + HEADER + len].to_vec(),
        });
        at += HEADER + len;
    }
    buf.drain(..at);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_garbage_and_splits() {
        let a = Frame::new(Kind::Hello, 0, b"abc".to_vec());
        let b = Frame::new(Kind::Out, 7, [1u8, b'h', b'i'].to_vec());
        let mut wire = b"\x00garbageV".to_vec();
        wire.extend(a.encode());
        wire.extend(b"VC\xff\x00\x00\x00\x00\x00\x00\x00\x00"); // bad kind: skipped
        wire.extend(b.encode());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            buf.extend_from_slice(chunk);
            got.extend(decode(&mut buf));
        }
        assert_eq!(got, vec![a, b]);
        assert!(buf.is_empty());
    }

    #[test]
    fn stdin_and_resize_frames_round_trip() {
        let frames = vec![
            Frame::new(Kind::Stdin, 0, b"echo hi\n".to_vec()),
            Frame::new(Kind::StdinClose, 0, Vec::new()),
            Frame::new(Kind::Resize, 3, resize_payload(40, 132)),
        ];
        let mut buf: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let got = decode(&mut buf);
        assert_eq!(got, frames);
        assert_eq!(parse_resize(&got[2].payload), Some((40, 132)));
        assert_eq!(parse_resize(b"40x132"), None);
    }

    #[test]
    fn old_exec_requests_still_parse() {
        let r: ExecRequest = serde_json::from_str(r#"{"cmd":["ls"]}"#).unwrap();
        assert!(!r.tty && !r.attach_stdin && r.console_size.is_none());
    }
}
