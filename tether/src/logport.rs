//! The container log on serial port 2: one json-file line per line of output, as dockerd
//! writes them (`{"log":"hi\n","stream":"stdout","time":"..."}`), plus a final
//! `{"event":"exit",...}` record that the VCH reads back if it missed the exit while the
//! VM ran. The file lives on the datastore, so `docker logs` survives VCH restarts. The
//! record format is the contract's (`container_vm::log`); this splits output into lines.

use container_vm::log::{encode_exit, encode_output, Stream};
use std::fs::File;
use std::io::Write;

/// A partial line longer than this is written out anyway (dockerd splits at 16 KiB).
const MAX_LINE: usize = 16 * 1024;

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Splits output into lines per stream and appends json-file records to the port.
pub struct LogWriter {
    port: Option<File>,
    pending: [(String, Vec<u8>); 2],
    /// TTY output: written as it comes (a prompt has no newline, and attached clients
    /// read the log), holding back only an incomplete UTF-8 character.
    tty: bool,
}

impl LogWriter {
    pub fn new(port: Option<File>) -> Self {
        LogWriter {
            port,
            pending: [("stdout".into(), Vec::new()), ("stderr".into(), Vec::new())],
            tty: false,
        }
    }

    /// The process runs on a TTY (see `tty`).
    pub fn set_tty(&mut self, tty: bool) {
        self.tty = tty;
    }

    fn slot(&mut self, stream: &str) -> usize {
        usize::from(stream == "stderr")
    }

    fn emit(&mut self, stream: &str, bytes: &[u8]) {
        let Some(port) = self.port.as_mut() else {
            return;
        };
        let text = String::from_utf8_lossy(bytes);
        let stream = if stream == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        // A log port that fails must not stop the container.
        let _ = port.write_all(&encode_output(stream, &text, &now()));
    }

    pub fn write(&mut self, stream: &str, data: &[u8]) {
        let i = self.slot(stream);
        self.pending[i].1.extend_from_slice(data);
        loop {
            let buf = &self.pending[i].1;
            let cut = match buf.iter().position(|b| *b == b'\n') {
                Some(p) => p + 1,
                None if buf.len() >= MAX_LINE => MAX_LINE,
                None => break,
            };
            let chunk: Vec<u8> = self.pending[i].1.drain(..cut).collect();
            self.emit(stream, &chunk);
        }
        if self.tty && !self.pending[i].1.is_empty() {
            let buf = &self.pending[i].1;
            let cut = match std::str::from_utf8(buf) {
                Ok(_) => buf.len(),
                // Only an incomplete character at the very end waits for the next read.
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => buf.len(),
            };
            if cut > 0 {
                let chunk: Vec<u8> = self.pending[i].1.drain(..cut).collect();
                self.emit(stream, &chunk);
            }
        }
    }

    /// Writes out an unterminated last line.
    pub fn flush_partial(&mut self, stream: &str) {
        let i = self.slot(stream);
        if !self.pending[i].1.is_empty() {
            let chunk = std::mem::take(&mut self.pending[i].1);
            self.emit(stream, &chunk);
        }
    }

    /// The final record; synced so it is on the datastore before the VM powers off.
    pub fn exit(&mut self, code: i32, error: Option<&str>, oom_killed: bool) {
        self.flush_partial("stdout");
        self.flush_partial("stderr");
        let Some(port) = self.port.as_mut() else {
            return;
        };
        let _ = port.write_all(&encode_exit(code.into(), error, oom_killed, &now()));
        let _ = port.sync_data();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn splits_lines_per_stream_and_ends_with_exit_record() {
        let path = std::env::temp_dir().join(format!("tether-log-{}", std::process::id()));
        let mut w = LogWriter::new(Some(File::create(&path).unwrap()));
        w.write("stdout", b"hel");
        w.write("stderr", b"oops\n");
        w.write("stdout", b"lo\nwor");
        w.exit(3, None, false);
        let mut s = String::new();
        File::open(&path).unwrap().read_to_string(&mut s).unwrap();
        let lines: Vec<serde_json::Value> = s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["log"], "oops\n");
        assert_eq!(lines[0]["stream"], "stderr");
        assert_eq!(lines[1]["log"], "hello\n");
        assert_eq!(lines[2]["log"], "wor");
        assert_eq!(lines[3]["event"], "exit");
        assert_eq!(lines[3]["exit_code"], 3);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn tty_output_is_written_without_waiting_for_a_newline() {
        let path = std::env::temp_dir().join(format!("tether-tty-log-{}", std::process::id()));
        let mut w = LogWriter::new(Some(File::create(&path).unwrap()));
        w.set_tty(true);
        w.write("stdout", b"/ # ");
        // "é" split across two reads is kept whole.
        w.write("stdout", b"caf\xc3");
        w.write("stdout", b"\xa9\r\n");
        let mut s = String::new();
        File::open(&path).unwrap().read_to_string(&mut s).unwrap();
        let logs: Vec<String> = s
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["log"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(logs, vec!["/ # ", "caf", "é\r\n"]);
        std::fs::remove_file(path).unwrap();
    }
}
