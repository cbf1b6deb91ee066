//! A network namespace the VCH acts in without moving into it: a worker thread parked
//! there makes sockets (a socket belongs to the namespace it was made in, whoever uses it
//! later) and starts programs (a child starts in its forking thread's namespace).

use super::GuestSide;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::sync::Arc;

type Job = Box<dyn FnOnce() + Send>;

pub struct Netns {
    path: PathBuf,
    jobs: parking_lot::Mutex<mpsc::Sender<Job>>,
}

impl Netns {
    /// Parks a worker thread in the namespace at `path` (`/proc/.../ns/net`).
    pub fn open(path: &Path) -> io::Result<Arc<Netns>> {
        let ns = File::open(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("vch-netns".into())
            .spawn(move || {
                let entered = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    // Ends when the Netns (the only sender) is dropped.
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("network namespace thread died"))??;
        Ok(Arc::new(Netns {
            path: path.to_path_buf(),
            jobs: parking_lot::Mutex::new(tx),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the thread inside the namespace and waits for its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .lock()
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| io::Error::other("network namespace thread is gone"))?;
        rx.recv()
            .map_err(|_| io::Error::other("network namespace thread is gone"))?
    }

    /// Runs a program inside the namespace (`ip`, `nft`) and returns its output; a
    /// non-zero exit is an error carrying its stderr.
    pub fn command(&self, program: &str, args: &[&str], stdin: Option<&str>) -> io::Result<Output> {
        let program = program.to_string();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let input = stdin.map(str::to_string);
        self.run(move || {
            use std::io::Write;
            let mut cmd = Command::new(&program);
            cmd.args(&args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = cmd.spawn()?;
            if let Some(text) = input {
                child
                    .stdin
                    .take()
                    .expect("piped")
                    .write_all(text.as_bytes())?;
            }
            drop(child.stdin.take());
            let out = child.wait_with_output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "{program} {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(out)
        })
    }

    /// A non-blocking, close-on-exec socket made inside the namespace.
    fn socket(&self, domain: i32, ty: i32) -> io::Result<OwnedFd> {
        self.run(move || {
            // SAFETY: plain socket(2); the descriptor is owned right away.
            let fd =
                unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
    }
}

fn family(at: &SocketAddr) -> i32 {
    if at.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

impl GuestSide for Netns {
    fn tcp_socket(&self) -> io::Result<tokio::net::TcpSocket> {
        let fd = self.socket(libc::AF_INET, libc::SOCK_STREAM)?;
        Ok(tokio::net::TcpSocket::from_std_stream(
            std::net::TcpStream::from(fd),
        ))
    }

    fn tcp_listen(&self, at: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let fd = self.socket(family(&at), libc::SOCK_STREAM)?;
        let s = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        s.set_reuseaddr(true)?;
        s.bind(at)?;
        s.listen(1024)
    }

    fn udp_bind(&self, at: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
        let fd = self.socket(family(&at), libc::SOCK_DGRAM)?;
        let s = std::net::UdpSocket::from(fd);
        let sock = socket2::SockRef::from(&s);
        sock.bind(&at.into())?;
        tokio::net::UdpSocket::from_std(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In this process's own namespace (no root needed): sockets and commands work
    /// through the worker thread.
    #[tokio::test]
    async fn sockets_and_commands_through_the_worker() {
        let ns = Netns::open(Path::new("/proc/self/ns/net")).unwrap();
        let l = ns.tcp_listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let at = l.local_addr().unwrap();
        let s = ns.tcp_socket().unwrap();
        let (c, a) = tokio::join!(s.connect(at), l.accept());
        assert!(c.is_ok() && a.is_ok());
        let u = ns.udp_bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(u.local_addr().unwrap().port() != 0);
        let out = ns.command("sh", &["-c", "cat"], Some("hi")).unwrap();
        assert_eq!(out.stdout, b"hi");
        let e = ns
            .command("sh", &["-c", "echo bad >&2; exit 3"], None)
            .unwrap_err();
        assert!(e.to_string().contains("bad"), "{e}");
    }
}
