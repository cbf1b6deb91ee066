"""TTY and stdin through the control channel: `docker run -it/-i/-t`, `docker exec -it/-i`,
driven with the real docker CLI, on a real pseudo-terminal where the CLI wants one."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
import uuid

from conftest import DOCKER


class Terminal:
    """The docker CLI running on a pseudo-terminal of a given size, as a user would run it."""

    def __init__(self, vch, args, rows=31, cols=97):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen([DOCKER, "-H", f"unix://{vch.sock}", *args],
                                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.seen = b""

    def expect(self, needle: bytes, timeout=60):
        end = time.monotonic() + timeout
        while needle not in self.seen:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; got {self.seen!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the CLI has gone
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{needle!r} not seen before the end; got {self.seen!r}")
                self.seen += chunk
        return self.seen

    def type(self, text: str):
        os.write(self.master, text.encode())

    def wait(self, timeout=60):
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            # Drain so nothing blocks, then close.
            try:
                while select.select([self.master], [], [], 0.1)[0]:
                    chunk = os.read(self.master, 4096)
                    if not chunk:
                        break
                    self.seen += chunk
            except OSError:
                pass
            os.close(self.master)
        return code


def test_run_it_shell_on_a_terminal(vch):
    name = "itsh-" + uuid.uuid4().hex[:8]
    t = Terminal(vch, ["run", "-it", "--rm", "--name", name, "busybox", "sh"])
    t.expect(b"# ")
    t.type("echo $((6*7))\r")
    t.expect(b"42")
    # ^C reaches the foreground job through the terminal (the shell has it as its
    # controlling terminal): sleep dies, the shell goes on. It is typed once sleep runs.
    t.type("sleep 60\r")
    deadline = time.monotonic() + 30
    while "sleep 60" not in vch.docker("exec", name, "ps", check=False).stdout:
        assert time.monotonic() < deadline, "sleep did not start"
        time.sleep(0.1)  # allow-sleep: poll interval of a deadline loop
    t.type("\x03")
    t.type("echo $((3*11))\r")
    t.expect(b"33", timeout=20)
    t.type("exit 3\r")
    assert t.wait() == 3, t.seen


def test_run_it_window_size_and_resize_reach_the_process(vch):
    t = Terminal(vch, ["run", "-it", "--rm", "busybox", "sh"], rows=31, cols=97)
    t.expect(b"# ")
    t.type("stty size\r")
    t.expect(b"31 97")
    # A resize of the user's terminal: the CLI gets SIGWINCH and posts /resize.
    fcntl.ioctl(t.master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    os.killpg(t.proc.pid, 28)  # SIGWINCH, as the kernel sends to the foreground group
    deadline = time.monotonic() + 30
    while b"40 120" not in t.seen and time.monotonic() < deadline:
        t.type("stty size\r")
        try:
            t.expect(b"40 120", timeout=1)
        except AssertionError:
            pass
    assert b"40 120" in t.seen, t.seen
    t.type("exit\r")
    assert t.wait() == 0


def test_run_t_has_a_pts_and_logs_keep_the_output(vch):
    name = "tty-" + uuid.uuid4().hex[:8]
    r = subprocess.run([DOCKER, "-H", f"unix://{vch.sock}", "run", "-t", "--name", name,
                        "busybox", "sh", "-c", "tty; echo done >&2"], capture_output=True, timeout=120)
    # A TTY turns \n into \r\n; stdout and stderr are one raw stream (no stdcopy headers).
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"/dev/pts/"), r.stdout
    assert r.stdout.endswith(b"\r\ndone\r\n"), r.stdout
    logs = subprocess.run([DOCKER, "-H", f"unix://{vch.sock}", "logs", name],
                          capture_output=True, timeout=60).stdout
    assert logs == r.stdout, logs
    cfg = vch.docker("inspect", "-f", "{{.Config.Tty}}", name).stdout.strip()
    assert cfg == "true"
    vch.docker("rm", name)


def test_run_i_pipes_stdin_and_closes_it_at_eof(vch):
    r = subprocess.run([DOCKER, "-H", f"unix://{vch.sock}", "run", "-i", "--rm", "busybox", "cat"],
                       input=b"hi\n", capture_output=True, timeout=120)
    assert (r.returncode, r.stdout) == (0, b"hi\n"), r.stderr


def test_run_i_large_input_arrives_whole(vch):
    # Random bytes hold the detach keys by chance: without a TTY they are data. The process
    # reads only after a while, so the input waits in flow control rather than in memory.
    data = os.urandom(4 << 20)
    r = subprocess.run([DOCKER, "-H", f"unix://{vch.sock}", "run", "-i", "--rm", "busybox",
                        "sh", "-c", "sleep 1; wc -c; exit 4"],
                       input=data, capture_output=True, timeout=180)
    assert r.returncode == 4, r.stderr
    assert r.stdout.strip() == str(len(data)).encode()


def test_run_without_i_has_no_stdin(vch):
    # Without -i the process's stdin is /dev/null even when the CLI has input.
    r = subprocess.run([DOCKER, "-H", f"unix://{vch.sock}", "run", "--rm", "busybox", "wc", "-c"],
                       input=b"ignored\n", capture_output=True, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, b"0"), r.stderr


def test_exec_it_and_exec_i(vch):
    name = "exec-tty-" + uuid.uuid4().hex[:8]
    vch.docker("run", "-d", "--name", name, "busybox", "sleep", "600")
    try:
        t = Terminal(vch, ["exec", "-it", name, "sh"], rows=22, cols=66)
        t.expect(b"# ")
        t.type("tty; stty size\r")
        t.expect(b"22 66")
        assert b"/dev/pts/" in t.seen
        t.type("exit 5\r")
        assert t.wait() == 5, t.seen

        r = subprocess.run([DOCKER, "-H", f"unix://{vch.sock}", "exec", "-i", name,
                            "sh", "-c", "tr a-z A-Z; exit 6"],
                           input=b"piped in\n", capture_output=True, timeout=120)
        assert (r.returncode, r.stdout) == (6, b"PIPED IN\n"), r.stderr

        # exec -i without the CLI's stdin closing early: a bigger input is whole too.
        data = b"x" * 300_000
        r = subprocess.run([DOCKER, "-H", f"unix://{vch.sock}", "exec", "-i", name, "wc", "-c"],
                           input=data, capture_output=True, timeout=120)
        assert (r.returncode, r.stdout.strip()) == (0, b"300000"), r.stderr
    finally:
        vch.docker("rm", "-f", name)


def test_detach_keys_leave_it_running_and_attach_resumes(vch):
    name = "detach-" + uuid.uuid4().hex[:8]
    t = Terminal(vch, ["run", "-it", "--name", name, "busybox", "sh"])
    t.expect(b"# ")
    t.type("echo $((4*4))\r")
    t.expect(b"16")
    t.type("\x10\x11")  # ctrl-p ctrl-q
    assert t.wait() == 0, t.seen
    assert vch.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    # Re-attaching continues the same shell, without replaying what was already shown.
    t = Terminal(vch, ["attach", name])
    t.type("echo $((5*5))\r")
    t.expect(b"25")
    assert b"16" not in t.seen, t.seen
    t.type("exit 9\r")
    assert t.wait() == 9, t.seen
    vch.docker("rm", name)


def test_attach_stdin_eof_keeps_stdin_open_without_stdin_once(vch):
    # `run -d -i`: OpenStdin without StdinOnce. A client's EOF ends its attach session
    # but leaves the process's stdin open for the next one, as dockerd does.
    name = "keepin-" + uuid.uuid4().hex[:8]
    vch.docker("run", "-d", "-i", "--name", name, "busybox", "cat")
    try:
        p = subprocess.Popen([DOCKER, "-H", f"unix://{vch.sock}", "attach", name],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.stdin.write(b"first\n")
        p.stdin.close()
        deadline = time.monotonic() + 30
        while "first" not in vch.docker("logs", name).stdout:
            assert time.monotonic() < deadline, "stdin did not reach the process"
            time.sleep(0.1)  # allow-sleep: poll interval of a deadline loop
        # allow-sleep: "the client's EOF does not end the process" is the claim: nothing may
        # happen for a while.
        time.sleep(1)
        assert vch.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        vch.docker("kill", name)
        # The CLI's attach waits for the container's exit, then ends.
        assert p.wait(timeout=30) is not None
    finally:
        vch.docker("rm", "-f", name)
