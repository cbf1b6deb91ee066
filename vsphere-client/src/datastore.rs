//! Datastore file transfer over vCenter's `/folder` HTTP endpoint: streaming upload and
//! download with byte ranges, authenticated by the SOAP session cookie.

use crate::client::{full, Body, Client};
use crate::error::{Error, Result};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;

/// Percent-encodes a path or query value, keeping `/` where asked.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn folder_url(datacenter: &str, datastore: &str, path: &str) -> String {
    format!(
        "/folder/{}?dcPath={}&dsName={}",
        encode(path.trim_start_matches('/'), true),
        encode(datacenter, false),
        encode(datastore, false)
    )
}

async fn check(
    resp: hyper::Response<hyper::body::Incoming>,
    url: &str,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(Error::Http {
        url: url.to_string(),
        status,
        body: String::from_utf8_lossy(&body).chars().take(300).collect(),
    })
}

impl Client {
    /// Uploads a stream of bytes to `[datastore] path` (the directory must exist).
    pub async fn upload_stream<S>(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
        len: Option<u64>,
        data: S,
    ) -> Result<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
    {
        let url = folder_url(datacenter, datastore, path);
        let body: Body = BodyExt::boxed(StreamBody::new(data.map_ok(Frame::data)));
        let mut headers = vec![("Content-Type", "application/octet-stream".to_string())];
        if let Some(l) = len {
            headers.push(("Content-Length", l.to_string()));
        }
        let resp = self.http(Method::PUT, &url, &headers, body).await?;
        check(resp, &url).await.map(|_| ())
    }

    pub async fn upload_bytes(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
        data: impl Into<Bytes>,
    ) -> Result<()> {
        let data: Bytes = data.into();
        let url = folder_url(datacenter, datastore, path);
        let len = data.len().to_string();
        let resp = self
            .http(Method::PUT, &url, &[("Content-Length", len)], full(data))
            .await?;
        check(resp, &url).await.map(|_| ())
    }

    /// Downloads `[datastore] path`, optionally a byte range `start..=end` (end None =
    /// to the end of the file), as a stream of chunks.
    pub async fn download(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let url = folder_url(datacenter, datastore, path);
        let headers: Vec<(&str, String)> = match range {
            Some((s, Some(e))) => vec![("Range", format!("bytes={s}-{e}"))],
            Some((s, None)) => vec![("Range", format!("bytes={s}-"))],
            None => vec![],
        };
        let resp = self.http(Method::GET, &url, &headers, full("")).await?;
        let resp = check(resp, &url).await?;
        let u = url.clone();
        Ok(resp.into_body().into_data_stream().map(move |r| {
            r.map_err(|e| Error::Transport {
                url: u.clone(),
                msg: e.to_string(),
            })
        }))
    }

    pub async fn download_bytes(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Vec<u8>> {
        let mut s = Box::pin(self.download(datacenter, datastore, path, range).await?);
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    pub async fn delete_file_http(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
    ) -> Result<()> {
        let url = folder_url(datacenter, datastore, path);
        let resp = self.http(Method::DELETE, &url, &[], full("")).await?;
        check(resp, &url).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_urls_are_encoded() {
        assert_eq!(
            folder_url("DC 0", "datastore1", "vch/images/a b.vmdk"),
            "/folder/vch/images/a%20b.vmdk?dcPath=DC%200&dsName=datastore1"
        );
    }
}
