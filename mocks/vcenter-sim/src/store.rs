//! Crash-safe inventory persistence: a snapshot file plus an append-only journal.
//!
//! Every mutating call appends the new state of each entity it touched (or its removal)
//! as one JSON line, then `fdatasync`s before the call is answered. A `kill -9` can only
//! cut the last line short, and replay ignores a line that does not parse, so the store
//! loses at most the in-flight call. On start the journal is folded into a fresh
//! snapshot written to a temporary file, synced and renamed over the old one.

use crate::model::{Entity, Inventory};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("inventory store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("inventory snapshot {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    next_id: u64,
    root_folder: vsphere_client::MoRef,
    entities: Vec<Entity>,
}

#[derive(Serialize, Deserialize)]
enum Record {
    Put { next_id: u64, entity: Box<Entity> },
    Del { next_id: u64, id: String },
}

pub struct Store {
    dir: PathBuf,
    journal: parking_lot::Mutex<File>,
    /// Group commit: appends are numbered; `synced` is the last number known durable.
    /// A caller whose append an fsync already covered does not fsync again, so
    /// concurrent calls share one fsync instead of queueing one each.
    appended: std::sync::atomic::AtomicU64,
    synced: parking_lot::Mutex<u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    fn snapshot_path(dir: &Path) -> PathBuf {
        dir.join("inventory.json")
    }
    fn journal_path(dir: &Path) -> PathBuf {
        dir.join("inventory.journal")
    }

    /// Loads the inventory if one was saved. Returns the store and the inventory (None on
    /// a fresh data directory).
    pub fn open(dir: &Path) -> Result<(Store, Option<Inventory>), StoreError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let snap_path = Self::snapshot_path(dir);
        let journal_path = Self::journal_path(dir);
        let mut inv: Option<Inventory> = None;
        if snap_path.exists() {
            let f = File::open(&snap_path).map_err(io(&snap_path))?;
            let snap: Snapshot = serde_json::from_reader(BufReader::new(f)).map_err(|source| {
                StoreError::Corrupt {
                    path: snap_path.clone(),
                    source,
                }
            })?;
            let mut i = Inventory {
                next_id: snap.next_id,
                root_folder: snap.root_folder,
                ..Default::default()
            };
            for e in snap.entities {
                i.entities.insert(e.moref.value.clone(), e);
            }
            inv = Some(i);
        }
        let mut replayed = 0usize;
        if let (Some(i), true) = (inv.as_mut(), journal_path.exists()) {
            let f = File::open(&journal_path).map_err(io(&journal_path))?;
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A torn last line (kill -9 mid-append) does not parse: it was never
                // acknowledged, so it is dropped.
                let Ok(rec) = serde_json::from_str::<Record>(&line) else {
                    break;
                };
                replayed += 1;
                match rec {
                    Record::Put { next_id, entity } => {
                        i.next_id = i.next_id.max(next_id);
                        i.entities.insert(entity.moref.value.clone(), *entity);
                    }
                    Record::Del { next_id, id } => {
                        i.next_id = i.next_id.max(next_id);
                        i.entities.remove(&id);
                    }
                }
            }
        }
        if replayed > 0 {
            if let Some(i) = &inv {
                Self::write_snapshot(dir, i)?;
            }
        }
        let journal = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(replayed > 0 || inv.is_none())
            .open(&journal_path)
            .map_err(io(&journal_path))?;
        let journal = {
            let mut j = journal;
            use std::io::Seek;
            j.seek(std::io::SeekFrom::End(0))
                .map_err(io(&journal_path))?;
            j
        };
        tracing::info!(replayed, "inventory store opened at {}", dir.display());
        Ok((
            Store {
                dir: dir.to_path_buf(),
                journal: parking_lot::Mutex::new(journal),
                appended: std::sync::atomic::AtomicU64::new(0),
                synced: parking_lot::Mutex::new(0),
            },
            inv,
        ))
    }

    /// Writes a full snapshot atomically (temp file, fsync, rename, fsync dir) and
    /// empties the journal.
    pub fn write_snapshot(dir: &Path, inv: &Inventory) -> Result<(), StoreError> {
        let path = Self::snapshot_path(dir);
        let tmp = dir.join("inventory.json.tmp");
        {
            let f = File::create(&tmp).map_err(io(&tmp))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let mut entities: Vec<&Entity> = inv.entities.values().collect();
            entities.sort_by(|a, b| a.moref.value.cmp(&b.moref.value));
            #[derive(Serialize)]
            struct SnapshotRef<'a> {
                next_id: u64,
                root_folder: &'a vsphere_client::MoRef,
                entities: Vec<&'a Entity>,
            }
            serde_json::to_writer(
                &mut w,
                &SnapshotRef {
                    next_id: inv.next_id,
                    root_folder: &inv.root_folder,
                    entities,
                },
            )
            .map_err(|e| StoreError::Io {
                path: tmp.clone(),
                source: e.into(),
            })?;
            let f = w.into_inner().map_err(|e| StoreError::Io {
                path: tmp.clone(),
                source: e.into_error(),
            })?;
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        let jp = Self::journal_path(dir);
        File::create(&jp)
            .and_then(|f| f.sync_all())
            .map_err(io(&jp))?;
        Ok(())
    }

    pub fn snapshot(&self, inv: &Inventory) -> Result<(), StoreError> {
        Self::write_snapshot(&self.dir, inv)
    }

    /// Appends the dirty entities' state. Call with the inventory lock held so records
    /// reach the journal in mutation order; then `sync` without it.
    /// Returns the append's number for `sync`, or None when nothing changed.
    pub fn append_dirty(&self, inv: &mut Inventory) -> Result<Option<u64>, StoreError> {
        if inv.dirty.is_empty() {
            return Ok(None);
        }
        let mut buf = Vec::new();
        let mut ids: Vec<String> = inv.dirty.drain().collect();
        ids.sort();
        for id in ids {
            let rec = match inv.entities.get(&id) {
                Some(e) => Record::Put {
                    next_id: inv.next_id,
                    entity: Box::new(e.clone()),
                },
                None => Record::Del {
                    next_id: inv.next_id,
                    id,
                },
            };
            serde_json::to_writer(&mut buf, &rec).expect("entities always serialize");
            buf.push(b'\n');
        }
        let jp = Self::journal_path(&self.dir);
        let mut j = self.journal.lock();
        j.write_all(&buf).map_err(io(&jp))?;
        Ok(Some(
            self.appended
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1,
        ))
    }

    /// Makes append `seq` (and all before it) durable.
    pub fn sync(&self, seq: u64) -> Result<(), StoreError> {
        let mut synced = self.synced.lock();
        if *synced >= seq {
            return Ok(());
        }
        // Everything appended so far is covered by this fsync.
        let upto = self.appended.load(std::sync::atomic::Ordering::SeqCst);
        let jp = Self::journal_path(&self.dir);
        // Clone the handle so the fsync does not block other appenders.
        let f = self.journal.lock().try_clone().map_err(io(&jp))?;
        f.sync_data().map_err(io(&jp))?;
        *synced = upto;
        Ok(())
    }
}
