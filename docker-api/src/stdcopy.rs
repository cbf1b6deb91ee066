//! Docker's stdcopy framing for multiplexed (non-TTY) streams.
//!
//! Each frame is an 8-byte header — stream id (0 stdin, 1 stdout, 2 stderr), three zero
//! bytes, big-endian u32 payload length — followed by the payload. Used for attach, exec
//! and logs when the container has no TTY; with a TTY the bytes go out raw.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::backend::StreamKind;

/// Size of a frame header.
pub const HEADER_LEN: usize = 8;

/// Frames `data` for `kind`, header and payload in one buffer so that a frame goes out in
/// one write. Payloads above u32::MAX are split into several frames.
pub fn frame(kind: StreamKind, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + data.len());
    encode_into(&mut out, kind, data);
    out.freeze()
}

/// Appends the frame(s) for `data` to `out`.
pub fn encode_into(out: &mut BytesMut, kind: StreamKind, data: &[u8]) {
    for chunk in data.chunks(u32::MAX as usize) {
        out.reserve(HEADER_LEN + chunk.len());
        out.put_u8(kind as u8);
        out.put_bytes(0, 3);
        // chunks() above bounds the length, so this cannot truncate.
        out.put_u32(chunk.len() as u32);
        out.put_slice(chunk);
    }
}

/// Incremental decoder: feed bytes as they arrive, take complete frames out.
#[derive(Default, Debug)]
pub struct Decoder {
    buf: BytesMut,
}

/// A malformed header (unknown stream id).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized stream: {0}")]
pub struct BadStream(pub u8);

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Returns the next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<(StreamKind, Bytes)>, BadStream> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = match self.buf[0] {
            0 => StreamKind::Stdin,
            1 => StreamKind::Stdout,
            2 => StreamKind::Stderr,
            other => return Err(BadStream(other)),
        };
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some((kind, self.buf.split_to(len).freeze())))
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Demultiplexes a complete byte buffer into (stdout, stderr). Test and tooling helper.
pub fn demux(data: &[u8]) -> Result<(Vec<u8>, Vec<u8>), BadStream> {
    let mut d = Decoder::new();
    d.push(data);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some((kind, payload)) = d.next_frame()? {
        match kind {
            StreamKind::Stderr => err.extend_from_slice(&payload),
            _ => out.extend_from_slice(&payload),
        }
    }
    Ok((out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let f = frame(StreamKind::Stderr, b"hi");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn round_trip_split_input() {
        let mut wire = BytesMut::new();
        encode_into(&mut wire, StreamKind::Stdout, b"hello ");
        encode_into(&mut wire, StreamKind::Stderr, b"oops");
        encode_into(&mut wire, StreamKind::Stdout, b"world");
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            d.push(&[*b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(d.pending(), 0);
        assert_eq!(
            demux(&wire).unwrap(),
            (b"hello world".to_vec(), b"oops".to_vec())
        );
        assert_eq!(demux(&[9, 0, 0, 0, 0, 0, 0, 0]), Err(BadStream(9)));
    }
}
