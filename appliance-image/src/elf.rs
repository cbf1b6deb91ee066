//! Is a binary static? A container VM's boot disk holds the tether and nothing else: no
//! dynamic loader, no libc. An ELF executable names its loader in a `PT_INTERP` program
//! header; a static (or static-pie) one has none.

/// Program header type naming the dynamic loader.
const PT_INTERP: u32 = 3;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("truncated or malformed ELF file ({0})")]
    Malformed(&'static str),
}

struct Reader<'a> {
    b: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], ElfError> {
        let end = at.checked_add(N).ok_or(ElfError::Malformed("offset"))?;
        let s = self
            .b
            .get(at..end)
            .ok_or(ElfError::Malformed("past the end"))?;
        Ok(s.try_into().expect("length checked"))
    }
    fn u16(&self, at: usize) -> Result<u16, ElfError> {
        let b = self.bytes::<2>(at)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }
    fn u32(&self, at: usize) -> Result<u32, ElfError> {
        let b = self.bytes::<4>(at)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn u64(&self, at: usize) -> Result<u64, ElfError> {
        let b = self.bytes::<8>(at)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
}

/// The dynamic loader an ELF file asks for (`/lib64/ld-linux-x86-64.so.2`), or None for a
/// static binary.
pub fn interpreter(b: &[u8]) -> Result<Option<String>, ElfError> {
    if b.len() < 16 || &b[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let is64 = match b[4] {
        1 => false,
        2 => true,
        _ => return Err(ElfError::Malformed("class")),
    };
    let r = Reader {
        b,
        big_endian: match b[5] {
            1 => false,
            2 => true,
            _ => return Err(ElfError::Malformed("byte order")),
        },
    };
    // e_phoff, e_phentsize, e_phnum sit at different offsets in the two classes.
    let (phoff, phentsize, phnum) = if is64 {
        (r.u64(0x20)?, r.u16(0x36)?, r.u16(0x38)?)
    } else {
        (u64::from(r.u32(0x1C)?), r.u16(0x2A)?, r.u16(0x2C)?)
    };
    let phoff = usize::try_from(phoff).map_err(|_| ElfError::Malformed("e_phoff"))?;
    for i in 0..usize::from(phnum) {
        let ph = phoff
            .checked_add(i * usize::from(phentsize))
            .ok_or(ElfError::Malformed("e_phoff"))?;
        if r.u32(ph)? != PT_INTERP {
            continue;
        }
        let (off, size) = if is64 {
            (r.u64(ph + 8)?, r.u64(ph + 32)?)
        } else {
            (u64::from(r.u32(ph + 4)?), u64::from(r.u32(ph + 16)?))
        };
        let (off, size) = (
            usize::try_from(off).map_err(|_| ElfError::Malformed("p_offset"))?,
            usize::try_from(size).map_err(|_| ElfError::Malformed("p_filesz"))?,
        );
        let path = off
            .checked_add(size)
            .and_then(|end| b.get(off..end))
            .ok_or(ElfError::Malformed("PT_INTERP past the end"))?;
        let path = path.split(|c| *c == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one way a unit test of this crate declines to run: under `CI=true` it fails
    /// with `why`; elsewhere it prints "SKIPPED <test>: <why>" and the caller returns.
    pub(crate) fn cannot_run(why: &str) {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let ci = std::env::var("CI").as_deref() == Ok("true");
        assert!(!ci, "{test} cannot run under CI=true: {why}");
        eprintln!("SKIPPED {test}: {why}");
    }

    /// A minimal little-endian ELF64 header with `phdrs` (type, offset, size) at 64.
    fn elf64(phdrs: &[(u32, u64, u64)], tail: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3A].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (ty, off, size) in phdrs {
            let mut ph = vec![0u8; 56];
            ph[0..4].copy_from_slice(&ty.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            b.extend(ph);
        }
        b.extend_from_slice(tail);
        b
    }

    #[test]
    fn finds_the_loader_or_none() {
        let at = 64 + 2 * 56;
        let dynamic = elf64(
            &[(6, 0, 0), (PT_INTERP, at, 28)],
            b"/lib64/ld-linux-x86-64.so.2\0",
        );
        assert_eq!(
            interpreter(&dynamic).unwrap().as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        let static_ = elf64(&[(6, 0, 0), (1, 0, 0)], b"");
        assert_eq!(interpreter(&static_).unwrap(), None);
    }

    #[test]
    fn refuses_what_is_not_a_sound_elf() {
        assert_eq!(interpreter(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        assert_eq!(interpreter(b""), Err(ElfError::NotElf));
        // PT_INTERP pointing past the end of the file.
        let bad = elf64(&[(PT_INTERP, 1 << 20, 10)], b"");
        assert!(matches!(interpreter(&bad), Err(ElfError::Malformed(_))));
        // Program headers past the end.
        let mut cut = elf64(&[(PT_INTERP, 0, 0)], b"");
        cut.truncate(80);
        assert!(matches!(interpreter(&cut), Err(ElfError::Malformed(_))));
    }

    /// Real binaries of this machine: this test (dynamic) and busybox-static.
    #[test]
    fn real_binaries() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&me)
            .unwrap()
            .expect("test binaries are dynamic");
        assert!(interp.contains("ld-linux"), "{interp}");
        match std::fs::read("/bin/busybox") {
            Ok(bb) if interpreter(&bb).unwrap().is_none() => {}
            Ok(_) => cannot_run("/bin/busybox is not the static build (busybox-static)"),
            Err(_) => cannot_run("no /bin/busybox (busybox-static)"),
        }
    }
}
