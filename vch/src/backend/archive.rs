//! `docker cp` (HEAD/GET/PUT /archive) and `docker export`: tar streams made and
//! unpacked by the container's tether, passed through without being held whole: the
//! outgoing stream is paced by the HTTP client (see channel::ops), the incoming one by
//! the tether's credits.

use super::guest_ops::reply_value;
use super::{internal, VchBackend};
use crate::channel::{OpsEvent, OpsSession};
use bytes::Bytes;
use container_vm::ops::{OpsRequest, CHUNK, PUT_WINDOW};
use docker_api::backend::ByteStream;
use docker_api::options::{PathStat, PutArchiveOptions};
use docker_api::{Error, Result};
use futures_util::StreamExt;

/// The guest's answer to `stat`/`get` as Docker's stat.
fn docker_stat(s: container_vm::ops::PathStat) -> PathStat {
    PathStat {
        name: s.name,
        size: s.size,
        mode: s.mode,
        mtime: s.mtime,
        link_target: s.link_target,
    }
}

/// The tar frames of `s` as a byte stream; ends with an error if the tether's did.
pub(super) fn tar_stream(s: OpsSession) -> ByteStream {
    futures_util::stream::unfold(Some(s), |s| async move {
        let mut s = s?;
        match s.next().await {
            Some(OpsEvent::Data(d)) => Some((Ok(d), Some(s))),
            Some(OpsEvent::Done(None)) => None,
            Some(OpsEvent::Done(Some(e))) => Some((Err(internal(format!("archive: {e}"))), None)),
            Some(_) => Some((Ok(Bytes::new()), Some(s))),
            None => Some((Err(internal("the container stopped during the copy")), None)),
        }
    })
    .filter(|r| futures_util::future::ready(!matches!(r, Ok(b) if b.is_empty())))
    .boxed()
}

impl VchBackend {
    pub(super) async fn archive_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let req = OpsRequest::Stat { path: path.into() };
        let (id, mut s) = self.guest_request(key, "docker cp", &req).await?;
        Ok(docker_stat(self.guest_answer_as(&id, &mut s).await?))
    }

    pub(super) async fn archive_get(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream)> {
        let req = OpsRequest::Get { path: path.into() };
        let (id, mut s) = self.guest_request(key, "docker cp", &req).await?;
        let stat = docker_stat(self.guest_answer_as(&id, &mut s).await?);
        Ok((stat, tar_stream(s)))
    }

    pub(super) async fn export(&self, key: &str) -> Result<ByteStream> {
        let (id, mut s) = self
            .guest_request(key, "docker export", &OpsRequest::Export)
            .await?;
        self.guest_answer(&id, &mut s).await?;
        Ok(tar_stream(s))
    }

    pub(super) async fn archive_put(
        &self,
        key: &str,
        opts: PutArchiveOptions,
        mut body: ByteStream,
    ) -> Result<()> {
        if opts.copy_uid_gid {
            return Err(Error::not_implemented("docker cp --archive (copyUIDGID)"));
        }
        let req = OpsRequest::Put {
            path: opts.path.clone(),
            no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
        };
        let (id, mut s) = self.guest_request(key, "docker cp", &req).await?;
        let mut credit = PUT_WINDOW;
        // Sends one frame once the window allows; an early answer is the tether refusing.
        macro_rules! answer_early {
            ($ev:expr) => {
                match $ev {
                    Some(OpsEvent::Credit) => credit += 1,
                    Some(OpsEvent::Reply(b)) => return reply_value(&id, &b).map(|_| ()),
                    Some(_) => {}
                    None => return Err(Error::Conflict(format!("Container {id} is not running"))),
                }
            };
        }
        // Client chunks are coalesced into full frames: every frame costs a credit, so
        // small ones (a Go client writes 32 KiB) would cap the rate at the window's.
        let mut pending: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut ended = false;
        while !ended || !pending.is_empty() {
            if !ended && pending.len() < CHUNK {
                match body.next().await {
                    Some(chunk) => {
                        pending.extend_from_slice(&chunk?);
                        continue;
                    }
                    None => ended = true,
                }
            }
            let piece: Vec<u8> = pending.drain(..pending.len().min(CHUNK)).collect();
            while credit == 0 {
                answer_early!(s.next().await);
            }
            // Credits that already arrived, and an early refusal, without waiting.
            while let Ok(ev) = tokio::time::timeout(std::time::Duration::ZERO, s.next()).await {
                answer_early!(ev);
            }
            if !s.send_data(piece) {
                return Err(Error::Conflict(format!("Container {id} is not running")));
            }
            credit -= 1;
        }
        s.send_data(Vec::new());
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(300), s.next()).await {
                Err(_) => return Err(internal("the container did not finish extracting in time")),
                Ok(Some(OpsEvent::Reply(b))) => return reply_value(&id, &b).map(|_| ()),
                Ok(Some(_)) => {}
                Ok(None) => return Err(Error::Conflict(format!("Container {id} is not running"))),
            }
        }
    }
}
