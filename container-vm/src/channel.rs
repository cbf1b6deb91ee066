//! The control channel on serial port 1 (network-backed: the VM connects to the VCH):
//! frames, their kinds and the payloads both ends build and read.
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
    /// tether → VCH: the container's `status::GuestStatus` (JSON): its pid and health,
    /// sent when either changes and after every `Hello`.
    Status = 11,
    /// VCH → tether: a parked instant clone may run its process now (`docker start`).
    /// (Numbered apart from the stdio frames so the two sets can grow independently.)
    Start = 20,

    // --- container operations (top, stats, archive); see [`crate::ops`] ---
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
            11 => Kind::Status,
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

/// The payload of an `Out` frame: the stream byte, then the data.
pub fn out_payload(stderr: bool, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(data.len() + 1);
    p.push(if stderr { STDERR } else { STDOUT });
    p.extend_from_slice(data);
    p
}

/// Whether an `Out` payload is stderr, and its data.
pub fn parse_out(p: &[u8]) -> (bool, &[u8]) {
    (p.first() == Some(&STDERR), p.get(1..).unwrap_or_default())
}

/// Stream bytes of `Out` frames.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// The payload of an `Exit` frame: the code, a newline, the error text (may be empty).
pub fn exit_payload(code: i32, error: Option<&str>) -> Vec<u8> {
    format!("{code}\n{}", error.unwrap_or_default()).into_bytes()
}

/// The code (-1 when unreadable) and error (`None` when empty) of an `Exit` payload.
pub fn parse_exit(p: &[u8]) -> (i64, Option<String>) {
    let text = String::from_utf8_lossy(p);
    let (code, error) = text.split_once('\n').unwrap_or((&text, ""));
    (
        code.trim().parse().unwrap_or(-1),
        Some(error.trim().to_string()).filter(|e| !e.is_empty()),
    )
}

/// The payload of a `Signal` frame: the signal number as text.
pub fn signal_payload(sig: i32) -> Vec<u8> {
    sig.to_string().into_bytes()
}

/// The signal a `Signal` payload names; `None` when it names none.
pub fn parse_signal(p: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(p).trim().parse().ok()
}

/// The payload of a `StdinAck` frame.
pub fn ack_payload(bytes: u32) -> Vec<u8> {
    bytes.to_be_bytes().to_vec()
}

/// The byte count of a `StdinAck` payload (0 when it is short).
pub fn parse_ack(p: &[u8]) -> u32 {
    let n: [u8; 4] = p
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    u32::from_be_bytes(n)
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

    #[test]
    fn a_frame_has_a_pinned_wire_form() {
        let f = Frame::new(Kind::Exit, 0x0102_0304, exit_payload(3, Some("boom")));
        assert_eq!(
            f.encode(),
            b"VC\x05\x01\x02\x03\x04\x00\x00\x00\x063\nboom".to_vec()
        );
        let kinds = [
            (Kind::Hello, 1u8),
            (Kind::Who, 2),
            (Kind::Exec, 3),
            (Kind::Out, 4),
            (Kind::Exit, 5),
            (Kind::Signal, 6),
            (Kind::Stdin, 7),
            (Kind::StdinClose, 8),
            (Kind::Resize, 9),
            (Kind::StdinAck, 10),
            (Kind::Status, 11),
            (Kind::Start, 20),
            (Kind::Request, 32),
            (Kind::Reply, 33),
            (Kind::Data, 34),
            (Kind::Credit, 35),
            (Kind::Done, 36),
            (Kind::Cancel, 37),
        ];
        for (k, n) in kinds {
            assert_eq!(k as u8, n);
            assert_eq!(Kind::from_u8(n), Some(k));
        }
    }

    #[test]
    fn payloads_round_trip() {
        assert_eq!(parse_out(&out_payload(true, b"err")), (true, &b"err"[..]));
        assert_eq!(out_payload(false, b"hi"), b"\x01hi".to_vec());
        assert_eq!(parse_out(&[]), (false, &b""[..]));
        assert_eq!(
            parse_exit(&exit_payload(127, Some("not found"))),
            (127, Some("not found".into()))
        );
        assert_eq!(exit_payload(0, None), b"0\n".to_vec());
        assert_eq!(parse_exit(&exit_payload(0, None)), (0, None));
        assert_eq!(parse_exit(b"garbage"), (-1, None));
        assert_eq!(parse_signal(&signal_payload(9)), Some(9));
        assert_eq!(parse_signal(b"KILL"), None);
        assert_eq!(parse_ack(&ack_payload(256 << 10)), 256 << 10);
        assert_eq!(ack_payload(1), vec![0, 0, 0, 1]);
        assert_eq!(parse_ack(b"\x01"), 0);
    }

    #[test]
    fn exec_requests_have_a_pinned_json_form() {
        let r = ExecRequest {
            cmd: vec!["sh".into()],
            tty: true,
            console_size: Some([40, 132]),
            ..Default::default()
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"cmd":["sh"],"env":[],"user":"","workdir":"","tty":true,"attach_stdin":false,"console_size":[40,132]}"#
        );
        assert_eq!(serde_json::from_str::<ExecRequest>(&json).unwrap(), r);
    }
}
