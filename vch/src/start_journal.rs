//! The VCH's record of the starts it acknowledged, so that none is lost to a kill -9.
//!
//! A container whose VM died with a killed VCH (the embedded simulator's VMs die with it)
//! and that wrote no exit record looks like one that was never started. The start must
//! therefore be recorded, durably, before `docker start` answers. Recording it in the VM
//! (a ReconfigVM_Task of its extraConfig) costs a vSphere task per start: a tenth of a
//! second and more on vCenter, and in the simulator a third of a mass start's time (1,000
//! starts: 3.2 s without, 13.8 s with). The record is the VCH's own promise, so it lives
//! with the VCH's state: one JSON line per start in `<state-dir>/starts.jsonl`, appended
//! and fdatasync'ed before the answer, folded to the last line per container at open.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Line {
    id: String,
    /// The run's start time (RFC 3339); empty: the start failed and was taken back.
    started: String,
}

pub struct StartJournal {
    path: PathBuf,
    /// Latest start per container id, as on disk.
    starts: parking_lot::Mutex<HashMap<String, String>>,
    /// Lines for the writer; each is answered once it is on disk.
    writer: tokio::sync::mpsc::UnboundedSender<(
        String,
        tokio::sync::oneshot::Sender<Result<(), String>>,
    )>,
}

/// Appends what is queued, one fdatasync for all of it (group commit: 32 concurrent
/// starts share one disk flush instead of queueing behind 32 of them).
fn spawn_writer(
    mut file: std::fs::File,
) -> tokio::sync::mpsc::UnboundedSender<(String, tokio::sync::oneshot::Sender<Result<(), String>>)>
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
        String,
        tokio::sync::oneshot::Sender<Result<(), String>>,
    )>();
    std::thread::Builder::new()
        .name("vch-start-journal".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut buf = String::new();
                for (line, _) in &batch {
                    buf.push_str(line);
                    buf.push('\n');
                }
                let r = file
                    .write_all(buf.as_bytes())
                    .and_then(|()| file.sync_data())
                    .map_err(|e| e.to_string());
                for (_, done) in batch {
                    let _ = done.send(r.clone());
                }
            }
        })
        .expect("cannot start the start journal's writer");
    tx
}

impl StartJournal {
    /// Opens (or creates) the journal and folds it to one line per started container.
    pub fn open(state_dir: &Path) -> std::io::Result<StartJournal> {
        let path = state_dir.join("starts.jsonl");
        let mut starts = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            // A torn last line (killed mid-write) is skipped: its start was not answered.
            for l in text
                .lines()
                .filter_map(|l| serde_json::from_str::<Line>(l).ok())
            {
                starts.insert(l.id, l.started);
            }
        }
        starts.retain(|_, s| !s.is_empty());
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            for (id, started) in &starts {
                let line = serde_json::to_string(&Line {
                    id: id.clone(),
                    started: started.clone(),
                })?;
                writeln!(f, "{line}")?;
            }
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(StartJournal {
            path,
            starts: parking_lot::Mutex::new(starts),
            writer: spawn_writer(file),
        })
    }

    /// The recorded start of container `id`'s latest run.
    pub fn started(&self, id: &str) -> Option<String> {
        self.starts.lock().get(id).cloned()
    }

    /// Records (durably) that `id` was started at `started`; an empty `started` takes a
    /// failed start back, `forget` drops a removed container.
    pub async fn record(&self, id: &str, started: &str) -> std::io::Result<()> {
        let line = serde_json::to_string(&Line {
            id: id.to_string(),
            started: started.to_string(),
        })?;
        let (done, written) = tokio::sync::oneshot::channel();
        self.writer
            .send((line, done))
            .map_err(|_| std::io::Error::other("the start journal's writer is gone"))?;
        written
            .await
            .map_err(|_| std::io::Error::other("the start journal's writer is gone"))?
            .map_err(std::io::Error::other)?;
        let mut s = self.starts.lock();
        if started.is_empty() {
            s.remove(id);
        } else {
            s.insert(id.to_string(), started.to_string());
        }
        Ok(())
    }

    pub async fn forget(&self, id: &str) {
        if self.started(id).is_some() {
            if let Err(e) = self.record(id, "").await {
                tracing::warn!(path = %self.path.display(), "start journal: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_survive_a_reopen_and_taken_back_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("vch-starts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = StartJournal::open(&dir).unwrap();
        j.record("a", "2026-01-01T00:00:00Z").await.unwrap();
        j.record("b", "2026-01-01T00:00:01Z").await.unwrap();
        j.record("b", "").await.unwrap();
        j.record("a", "2026-01-01T00:00:02Z").await.unwrap();
        drop(j);
        // A torn line from a kill in the middle of a write.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("starts.jsonl"))
            .unwrap();
        f.write_all(b"{\"id\":\"c\",\"sta").unwrap();
        let j = StartJournal::open(&dir).unwrap();
        assert_eq!(j.started("a").as_deref(), Some("2026-01-01T00:00:02Z"));
        assert_eq!(j.started("b"), None);
        assert_eq!(j.started("c"), None);
        let lines = std::fs::read_to_string(dir.join("starts.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 1, "folded at open: {lines}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
