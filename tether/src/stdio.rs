//! Stdin and TTY of the processes the tether runs (the main process is session 0, exec
//! sessions have their own numbers): builds each process's stdio — a pseudo-terminal, a
//! stdin pipe, or /dev/null — and routes `Stdin`, `StdinClose` and `Resize` frames from the
//! control channel to it.
//!
//! Writes into a process's stdin may block (a full pipe, a process that does not read), so
//! every session with stdin has its own writer thread fed through a queue: the control
//! channel's reader never blocks on one process. Every `Stdin` frame is acknowledged once
//! written (or discarded) through the sink set with [`set_ack_sink`]; the VCH bounds what is
//! unacknowledged, which bounds the queue.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, Mutex};

/// What a session wants from its stdio.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wants {
    pub tty: bool,
    pub stdin: bool,
    /// Initial window size `[rows, cols]` of the TTY.
    pub size: Option<[u16; 2]>,
}

/// The process's side of its stdio, ready for `Command`, plus the parent's reading end of
/// a TTY.
pub struct Plumbing {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// The TTY's master: everything the process writes to stdout or stderr (read until
    /// EIO, which comes when the last holder of the terminal has gone).
    pub tty_output: Option<File>,
}

impl Plumbing {
    /// Installs the stdio in `cmd`; with a TTY the process also becomes a session leader
    /// with the terminal as its controlling terminal, as a login shell expects (job
    /// control, ^C reaching the foreground group).
    pub fn install(self, cmd: &mut Command) -> Option<File> {
        cmd.stdin(self.stdin)
            .stdout(self.stdout)
            .stderr(self.stderr);
        if self.tty_output.is_some() {
            // SAFETY: setsid and ioctl are async-signal-safe. std has already dup'ed the
            // terminal onto fd 0 when pre_exec closures run.
            unsafe {
                cmd.pre_exec(|| {
                    if nix::libc::setsid() < 0
                        || nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) < 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        self.tty_output
    }
}

/// What the control channel asks of a session's stdio (kept as is for the main process
/// until it exists).
enum Early {
    Data(Vec<u8>),
    Close,
    Resize(u16, u16),
}

struct Entry {
    /// Feeds the writer thread; dropping it closes the pipe (a TTY stays open).
    input: Option<mpsc::Sender<Vec<u8>>>,
    /// The TTY's master, for window size changes.
    pty: Option<Arc<OwnedFd>>,
}

#[derive(Default)]
struct Table {
    live: HashMap<u32, Entry>,
    /// Frames for the main process that came before it was started: `docker run -i`
    /// attaches first, so the client's input can reach the VM before the process exists.
    early: Vec<Early>,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| Mutex::new(Table::default()));

fn table() -> std::sync::MutexGuard<'static, Table> {
    match TABLE.lock() {
        Ok(t) => t,
        Err(p) => p.into_inner(),
    }
}

fn set_size(fd: &OwnedFd, rows: u16, cols: u16) {
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer. The kernel sends SIGWINCH to
    // the terminal's foreground process group.
    unsafe {
        nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCSWINSZ as _, &ws);
    }
}

type AckSink = Box<dyn Fn(u32, usize) + Send + Sync>;
static ACK: std::sync::OnceLock<AckSink> = std::sync::OnceLock::new();

/// Where acknowledgements of stdin bytes go (`session`, bytes): the control channel.
pub fn set_ack_sink(f: impl Fn(u32, usize) + Send + Sync + 'static) {
    let _ = ACK.set(Box::new(f));
}

fn ack(session: u32, n: usize) {
    if let Some(f) = ACK.get() {
        f(session, n);
    }
}

/// A writer thread for `sink`; returns its queue.
fn writer(session: u32, mut sink: File) -> mpsc::Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut broken = false;
        for data in rx {
            // Once the process closed its stdin (or ended) the rest is discarded, and
            // still acknowledged so the client is not held back forever.
            broken = broken || sink.write_all(&data).is_err();
            ack(session, data.len());
        }
    });
    tx
}

fn io_err(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// Opens a pseudo-terminal pair, both ends close-on-exec (other processes spawned
/// meanwhile must not inherit them, or the master would never see EIO).
fn open_pty(size: Option<[u16; 2]>) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    use std::os::fd::{FromRawFd, IntoRawFd};
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(io_err)?;
    nix::pty::grantpt(&master).map_err(io_err)?;
    nix::pty::unlockpt(&master).map_err(io_err)?;
    let name = nix::pty::ptsname_r(&master).map_err(io_err)?;
    // SAFETY: posix_openpt returned a fresh descriptor that we now own.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&name)?
        .into();
    if let Some([rows, cols]) = size {
        set_size(&master, rows, cols);
    }
    Ok((master, slave))
}

/// Builds the stdio of `session` and registers its input side. Without a TTY stdout and
/// stderr are pipes the caller takes from the spawned child.
pub fn plumb(session: u32, wants: Wants) -> std::io::Result<Plumbing> {
    let mut entry = Entry {
        input: None,
        pty: None,
    };
    let plumbing = if wants.tty {
        let (master, slave) = open_pty(wants.size)?;
        let master = Arc::new(master);
        if wants.stdin {
            entry.input = Some(writer(session, File::from(master.try_clone()?)));
        }
        entry.pty = Some(master.clone());
        Plumbing {
            stdin: Stdio::from(slave.try_clone()?),
            stdout: Stdio::from(slave.try_clone()?),
            stderr: Stdio::from(slave),
            tty_output: Some(File::from(master.try_clone()?)),
        }
    } else if wants.stdin {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io_err)?;
        entry.input = Some(writer(session, File::from(write)));
        Plumbing {
            stdin: Stdio::from(read),
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
            tty_output: None,
        }
    } else {
        // Registered all the same, so frames parked for the main process are dropped.
        Plumbing {
            stdin: Stdio::null(),
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
            tty_output: None,
        }
    };
    let mut t = table();
    t.live.insert(session, entry);
    if session == 0 {
        // Replayed under the lock: a frame arriving meanwhile must not overtake them.
        for e in std::mem::take(&mut t.early) {
            apply(&mut t, session, e);
        }
    }
    Ok(plumbing)
}

/// Forgets `session` (its process ended): a pipe's writer closes.
pub fn unregister(session: u32) {
    table().live.remove(&session);
}

fn apply(t: &mut Table, session: u32, what: Early) {
    // Only the main process can be addressed before it exists: keep its frames.
    if session == 0 && !t.live.contains_key(&0) {
        t.early.push(what);
        return;
    }
    let Some(e) = t.live.get_mut(&session) else {
        if let Early::Data(d) = what {
            ack(session, d.len());
        }
        return;
    };
    match what {
        Early::Data(d) => {
            let n = d.len();
            let queued = e.input.as_ref().is_some_and(|tx| tx.send(d).is_ok());
            if !queued {
                ack(session, n);
            }
        }
        // EOF for a pipe. A TTY is left open (closing its input side would not give the
        // process an EOF anyway; that is a ^D the user types).
        Early::Close if e.pty.is_none() => e.input = None,
        Early::Close => {}
        Early::Resize(rows, cols) => {
            if let Some(pty) = &e.pty {
                set_size(pty, rows, cols);
            }
        }
    }
}

/// A `Stdin` frame.
pub fn input(session: u32, data: Vec<u8>) {
    if !data.is_empty() {
        apply(&mut table(), session, Early::Data(data));
    }
}

/// A `StdinClose` frame.
pub fn close(session: u32) {
    apply(&mut table(), session, Early::Close);
}

/// A `Resize` frame.
pub fn resize(session: u32, rows: u16, cols: u16) {
    apply(&mut table(), session, Early::Resize(rows, cols));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn run(session: u32, wants: Wants, argv: &[&str]) -> (std::process::Child, Option<File>) {
        let p = plumb(session, wants).unwrap();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        let tty = p.install(&mut cmd);
        let child = cmd.spawn().unwrap();
        // The parent's copies of the terminal must go, or the master never sees EIO.
        drop(cmd);
        (child, tty)
    }

    fn read_all(mut f: impl Read) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // A TTY's master reports the end as EIO.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn pipe_stdin_gets_input_then_eof() {
        let (mut child, tty) = run(
            101,
            Wants {
                stdin: true,
                ..Default::default()
            },
            &["wc", "-c"],
        );
        assert!(tty.is_none());
        input(101, vec![b'x'; 300_000]);
        close(101);
        let out = read_all(child.stdout.take().unwrap());
        assert_eq!(out.trim(), "300000");
        assert!(child.wait().unwrap().success());
        unregister(101);
    }

    #[test]
    fn main_process_input_before_it_exists_is_kept_in_order() {
        // `docker run -i` sends input as soon as the VM's channel is up, which can be
        // before the main process runs.
        input(0, b"early ".to_vec());
        input(0, b"bird".to_vec());
        close(0);
        let (mut child, _) = run(
            0,
            Wants {
                stdin: true,
                ..Default::default()
            },
            &["cat"],
        );
        assert_eq!(read_all(child.stdout.take().unwrap()), "early bird");
        assert!(child.wait().unwrap().success());
        unregister(0);
    }

    #[test]
    fn tty_has_size_controlling_terminal_and_resize() {
        let (mut child, tty) = run(
            102,
            Wants {
                tty: true,
                stdin: true,
                size: Some([33, 111]),
            },
            &[
                "sh",
                "-c",
                "stty size; tty; read line; stty size; echo got $line",
            ],
        );
        let mut tty = tty.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Resize once the first report is out, so the second shows the new size.
        while !String::from_utf8_lossy(&seen).contains("/dev/pts/") {
            let n = tty.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        resize(102, 50, 160);
        input(102, b"hello\n".to_vec());
        let rest = read_all(tty);
        let all = String::from_utf8_lossy(&seen).into_owned() + &rest;
        assert!(all.contains("33 111"), "{all}");
        assert!(all.contains("50 160"), "{all}");
        assert!(all.contains("got hello"), "{all}");
        assert!(child.wait().unwrap().success());
        unregister(102);
    }
}
