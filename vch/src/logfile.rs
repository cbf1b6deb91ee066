//! Reading a container's log (serial port 2, `[ds] <vm>/container.log`, json-file lines
//! written by the tether, format in `container_vm::log`) through the datastore: whole, or
//! followed live by polling with byte ranges. The last record of a finished container is
//! its exit record.

use std::time::Duration;
use vsphere_client::Client;

/// How often a followed log is polled for new bytes.
const POLL: Duration = Duration::from_millis(5);

/// A log record, as the contract (`container_vm::log`) defines and parses it.
pub use container_vm::log::{parse, Record};

/// Where a container's log lives.
#[derive(Clone)]
pub struct LogFile {
    pub client: Client,
    pub datacenter: String,
    pub datastore: String,
    /// Path inside the datastore (`<vm>/container.log`).
    pub path: String,
}

impl LogFile {
    /// Bytes from `offset` on; empty when there is nothing new or no file yet.
    async fn read_from(&self, offset: u64) -> Vec<u8> {
        self.client
            .download_bytes(
                &self.datacenter,
                &self.datastore,
                &self.path,
                Some((offset, None)),
            )
            .await
            .unwrap_or_default()
    }

    pub async fn read_all(&self) -> Vec<Record> {
        parse(&self.read_from(0).await).0
    }

    /// The exit record of the run that started at `since` (RFC 3339): the log holds
    /// every run of the container, and an earlier run's exit is not this one's.
    pub async fn exit_since(&self, since: Option<&str>) -> Option<(i64, Option<String>)> {
        last_exit(&self.read_all().await, since)
    }

    /// Whether the exit record of the run that started at `since` says the process was
    /// killed for exceeding the VM's memory.
    pub async fn oom_killed_since(&self, since: Option<&str>) -> bool {
        matches!(
            last_exit_record(&self.read_all().await, since),
            Some(Record::Exit {
                oom_killed: true,
                ..
            })
        )
    }

    /// Current size of the log (0 when there is none yet).
    pub async fn size(&self) -> u64 {
        self.read_from(0).await.len() as u64
    }

    /// Records from byte `from` on, then new ones as they are written, until the exit
    /// record (or `stop()` returns true between polls).
    pub fn follow(
        self,
        from: u64,
        stop: impl Fn() -> bool + Send + 'static,
    ) -> impl futures_util::Stream<Item = Record> + Send + 'static {
        futures_util::stream::unfold(
            (
                self,
                from,
                Vec::<u8>::new(),
                std::collections::VecDeque::<Record>::new(),
                false,
                stop,
            ),
            |(lf, mut offset, mut pending, mut queue, mut done, stop)| async move {
                loop {
                    if let Some(r) = queue.pop_front() {
                        if matches!(r, Record::Exit { .. }) {
                            done = true;
                        }
                        return Some((r, (lf, offset, pending, queue, done, stop)));
                    }
                    if done || stop() {
                        return None;
                    }
                    let fresh = lf.read_from(offset).await;
                    if fresh.is_empty() {
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                    offset += fresh.len() as u64;
                    pending.extend_from_slice(&fresh);
                    let (records, used) = parse(&pending);
                    pending.drain(..used);
                    queue.extend(records);
                }
            },
        )
    }
}

/// The last exit record, if it is not older than `since`.
fn last_exit(records: &[Record], since: Option<&str>) -> Option<(i64, Option<String>)> {
    match last_exit_record(records, since)? {
        Record::Exit { code, error, .. } => Some((*code, error.clone())),
        _ => None,
    }
}

fn last_exit_record<'a>(records: &'a [Record], since: Option<&str>) -> Option<&'a Record> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let since = since.and_then(parse);
    let exit = records
        .iter()
        .rev()
        .find(|r| matches!(r, Record::Exit { .. }))?;
    let Record::Exit { time, .. } = exit else {
        return None;
    };
    let current = match (since, parse(time)) {
        (Some(s), Some(t)) => t >= s,
        _ => true,
    };
    current.then_some(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_runs_exit_is_not_the_current_runs() {
        let buf = b"{\"event\":\"exit\",\"exit_code\":3,\"time\":\"2024-01-01T00:00:01.5Z\"}\n";
        let (recs, _) = parse(buf);
        assert_eq!(last_exit(&recs, None), Some((3, None)));
        assert_eq!(
            last_exit(&recs, Some("2024-01-01T00:00:01Z")),
            Some((3, None))
        );
        assert_eq!(last_exit(&recs, Some("2024-01-01T00:00:02Z")), None);
    }

    #[test]
    fn parses_lines_and_keeps_partial_tail() {
        let buf = b"{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n{\"event\":\"exit\",\"exit_code\":3,\"time\":\"u\"}\n{\"log\":\"par";
        let (recs, used) = parse(buf);
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[1],
            Record::Exit {
                code: 3,
                error: None,
                oom_killed: false,
                time: "u".into()
            }
        );
        assert_eq!(&buf[used..], b"{\"log\":\"par");
        let (recs, _) = parse(b"{\"event\":\"exit\",\"exit_code\":137,\"oom_killed\":true}\n");
        assert!(matches!(
            recs[0],
            Record::Exit {
                code: 137,
                oom_killed: true,
                ..
            }
        ));
    }
}
