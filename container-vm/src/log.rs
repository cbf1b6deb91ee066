//! The container log on serial port 2 (a file on the datastore, `<vm>/container.log`):
//! one JSON object per line in dockerd's json-file format, written by the tether and read
//! back by the VCH for `docker logs`, and a final exit record the VCH reads if it missed
//! the exit while the VM ran:
//!
//! ```text
//! {"log":"hi\n","stream":"stdout","time":"2026-11-25T13:40:01.123456789Z"}
//! {"event":"exit","exit_code":0,"time":"2026-11-25T13:40:01.124Z"}
//! ```

use serde::{Deserialize, Serialize};

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Output {
        stream: Stream,
        data: String,
        time: String,
    },
    Exit {
        code: i64,
        error: Option<String>,
        /// Killed for exceeding the VM's memory (Docker's `State.OOMKilled`).
        oom_killed: bool,
        time: String,
    },
}

#[derive(Serialize)]
struct OutputLine<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

#[derive(Serialize)]
struct ExitLine<'a> {
    event: &'a str,
    exit_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    oom_killed: bool,
    time: &'a str,
}

fn line(v: &impl Serialize) -> Vec<u8> {
    // Serializing these structs of strings and numbers cannot fail.
    let mut json = serde_json::to_vec(v).unwrap_or_default();
    json.push(b'\n');
    json
}

/// One output line, newline-terminated.
pub fn encode_output(stream: Stream, text: &str, time: &str) -> Vec<u8> {
    line(&OutputLine {
        log: text,
        stream: stream.as_str(),
        time,
    })
}

/// The exit record, newline-terminated.
pub fn encode_exit(code: i64, error: Option<&str>, oom_killed: bool, time: &str) -> Vec<u8> {
    line(&ExitLine {
        event: "exit",
        exit_code: code,
        error,
        oom_killed,
        time,
    })
}

impl Record {
    /// The record as a log line, newline-terminated.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Record::Output { stream, data, time } => encode_output(*stream, data, time),
            Record::Exit {
                code,
                error,
                oom_killed,
                time,
            } => encode_exit(*code, error.as_deref(), *oom_killed, time),
        }
    }
}

/// Any line, as written by tethers old and new.
#[derive(Deserialize)]
struct RawLine {
    log: Option<String>,
    stream: Option<String>,
    event: Option<String>,
    exit_code: Option<i64>,
    error: Option<String>,
    #[serde(default)]
    oom_killed: bool,
    #[serde(default)]
    time: String,
}

/// Parses the complete lines of `buf`; returns the records and how many bytes were
/// consumed (a partial last line is left for the next read). A torn or foreign line is
/// skipped, not fatal.
pub fn parse(buf: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some(nl) = buf[used..].iter().position(|b| *b == b'\n') {
        let line = &buf[used..used + nl];
        used += nl + 1;
        let Ok(r) = serde_json::from_slice::<RawLine>(line) else {
            continue;
        };
        if r.event.as_deref() == Some("exit") {
            out.push(Record::Exit {
                code: r.exit_code.unwrap_or(-1),
                error: r.error,
                oom_killed: r.oom_killed,
                time: r.time,
            });
        } else if let Some(log) = r.log {
            out.push(Record::Output {
                stream: if r.stream.as_deref() == Some("stderr") {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                },
                data: log,
                time: r.time,
            });
        }
    }
    (out, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_pinned_forms() {
        assert_eq!(
            encode_output(Stream::Stdout, "hi\n", "2026-11-25T13:40:01.123456789Z"),
            b"{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-25T13:40:01.123456789Z\"}\n"
        );
        assert_eq!(
            encode_exit(0, None, false, "t"),
            b"{\"event\":\"exit\",\"exit_code\":0,\"time\":\"t\"}\n"
        );
        assert_eq!(
            encode_exit(137, Some("killed"), true, "t"),
            b"{\"event\":\"exit\",\"exit_code\":137,\"error\":\"killed\",\"oom_killed\":true,\"time\":\"t\"}\n"
        );
    }

    #[test]
    fn records_round_trip_and_a_partial_tail_is_kept() {
        let records = vec![
            Record::Output {
                stream: Stream::Stderr,
                data: "oops é\n".into(),
                time: "a".into(),
            },
            Record::Output {
                stream: Stream::Stdout,
                data: "no newline".into(),
                time: "b".into(),
            },
            Record::Exit {
                code: 3,
                error: Some("exec failed".into()),
                oom_killed: false,
                time: "c".into(),
            },
        ];
        let mut wire: Vec<u8> = records.iter().flat_map(Record::encode).collect();
        let whole = wire.len();
        wire.extend_from_slice(b"{\"log\":\"par");
        let (got, used) = parse(&wire);
        assert_eq!(got, records);
        assert_eq!(used, whole);
    }

    #[test]
    fn foreign_lines_are_skipped_and_old_exit_records_read() {
        let (got, _) = parse(b"not json\n{\"other\":1}\n{\"event\":\"exit\"}\n");
        assert_eq!(
            got,
            vec![Record::Exit {
                code: -1,
                error: None,
                oom_killed: false,
                time: String::new()
            }]
        );
    }
}
