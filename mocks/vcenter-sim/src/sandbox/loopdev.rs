//! Loop devices for VM disks, attached with LOOP_CONFIGURE (one ioctl, so a device is
//! never visible half-configured) and auto-clear, so the kernel detaches them once the
//! VM's mounts are gone and we drop our descriptor: nothing leaks even if the simulator
//! dies.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device; dropping it releases our reference (auto-clear detaches).
#[derive(Debug)]
pub struct LoopDevice {
    pub path: PathBuf,
    _dev: File,
}

pub fn attach(backing: &Path, readonly: bool) -> io::Result<LoopDevice> {
    let file = OpenOptions::new()
        .read(true)
        .write(!readonly)
        .open(backing)?;
    let ctl = File::open("/dev/loop-control")?;
    // LOOP_CTL_GET_FREE hands the same free device to concurrent callers; within this
    // process one attach at a time (each is well under a millisecond), and retries for
    // other processes on the host.
    static ATTACH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = ATTACH.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = OpenOptions::new().read(true).write(!readonly).open(&path)?;
        let mut name = [0u8; 64];
        let src = backing.as_os_str().as_encoded_bytes();
        let len = src.len().min(63);
        name[..len].copy_from_slice(&src[..len]);
        let cfg = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR | if readonly { LO_FLAGS_READ_ONLY } else { 0 },
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: cfg is a valid loop_config that outlives the call.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &cfg as *const LoopConfig) };
        if r == 0 {
            return Ok(LoopDevice { path, _dev: dev });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(err);
        }
        // Someone else took this device between GET_FREE and CONFIGURE: try the next.
    }
    Err(io::Error::other("no free loop device after 16 attempts"))
}
