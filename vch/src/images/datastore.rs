//! The store's files on the datastore, all under `[ds] <vch>/images/`:
//!
//! ```text
//! repositories.json                  the index: images, tags and digests, layers
//! blobs/sha256/<hex>                 manifests, indexes and configs (immutable)
//! layers/<diff-id hex>/layer.vmdk    flat VMDK descriptor of the layer disk
//!                      layer-flat.vmdk   the EROFS image
//!                      layer.tarsplit.gz how to rebuild the exact layer tar (save)
//!                      layer.json        written last: the layer is complete
//! tmp/<uuid>/                        a layer being uploaded; moved into layers/ whole
//! ```
//! Transfers go through vCenter's `/folder` endpoint; directories, moves and deletes
//! through the FileManager.

use super::error::{ImageError, Result};
use bytes::Bytes;
use futures_util::Stream;
use std::fmt;
use vsphere_client::{Client, MoRef};

/// `[datastore] path/inside` — what a VM's disk backing `fileName` takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DatastorePath {
    pub datastore: String,
    pub path: String,
}

impl fmt::Display for DatastorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.datastore, self.path)
    }
}

/// The flat VMDK descriptor for a raw image of `bytes` (a multiple of 512), in the
/// format vSphere (and the simulator's CreateVirtualDisk) writes.
pub fn vmdk_descriptor(flat_name: &str, bytes: u64, uuid: &str) -> String {
    let sectors = bytes.div_ceil(512);
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\nRW {sectors} VMFS \"{flat_name}\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.thinProvisioned = \"1\"\nddb.uuid = \"{uuid}\"\nddb.virtualHWVersion = \"19\"\nddb.comment = \"vch read-only image layer (erofs)\"\n"
    )
}

#[derive(Clone)]
pub struct Datastore {
    client: Client,
    dc_name: String,
    dc: MoRef,
    ds_name: String,
    /// `<vch>/images`, no leading or trailing slash.
    root: String,
}

fn is_fault(e: &vsphere_client::Error, ty: &str) -> bool {
    e.fault_type() == Some(ty)
}

impl Datastore {
    pub async fn new(
        client: Client,
        datacenter: Option<&str>,
        datastore: Option<&str>,
        root: &str,
    ) -> Result<Datastore> {
        let (dc_name, dc) = client.datacenter(datacenter).await?;
        let (ds_name, _) = client.datastore(&dc, datastore).await?;
        let root = root.trim_matches('/').to_string();
        if root.is_empty() || root.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(ImageError::InvalidArgument(format!(
                "bad image store directory {root:?}"
            )));
        }
        Ok(Datastore {
            client,
            dc_name,
            dc,
            ds_name,
            root,
        })
    }

    pub fn name(&self) -> &str {
        &self.ds_name
    }

    /// The vSphere client this datastore is reached through.
    pub fn client_ref(&self) -> &Client {
        &self.client
    }

    /// `<root>/<rel>` inside the datastore.
    pub fn rel(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{}", self.root, rel)
        }
    }

    pub fn path(&self, rel: &str) -> DatastorePath {
        DatastorePath {
            datastore: self.ds_name.clone(),
            path: self.rel(rel),
        }
    }

    fn ds_path(&self, rel: &str) -> String {
        self.path(rel).to_string()
    }

    /// Creates the directory and its parents; an existing one is fine.
    pub async fn mkdir(&self, rel: &str) -> Result<()> {
        match self
            .client
            .make_directory(&self.dc, &self.ds_path(rel), true)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_fault(&e, "FileAlreadyExists") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn put_bytes(&self, rel: &str, data: impl Into<Bytes>) -> Result<()> {
        self.client
            .upload_bytes(&self.dc_name, &self.ds_name, &self.rel(rel), data)
            .await
            .map_err(Into::into)
    }

    pub async fn put_stream<S>(&self, rel: &str, len: u64, data: S) -> Result<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
    {
        self.client
            .upload_stream(
                &self.dc_name,
                &self.ds_name,
                &self.rel(rel),
                Some(len),
                data,
            )
            .await
            .map_err(Into::into)
    }

    /// The whole file, or None if it does not exist.
    pub async fn get_bytes(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match self
            .client
            .download_bytes(&self.dc_name, &self.ds_name, &self.rel(rel), None)
            .await
        {
            Ok(b) => Ok(Some(b)),
            Err(vsphere_client::Error::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_stream(
        &self,
        rel: &str,
    ) -> Result<impl Stream<Item = vsphere_client::Result<Bytes>> + Send + 'static> {
        Ok(self
            .client
            .download(&self.dc_name, &self.ds_name, &self.rel(rel), None)
            .await?)
    }

    /// Moves a file or directory; Ok(false) when the destination already exists (and
    /// `force` is false), which for content-addressed paths means someone else won.
    pub async fn mv(&self, from: &str, to: &str, force: bool) -> Result<bool> {
        match self
            .client
            .move_datastore_file(&self.dc, &self.ds_path(from), &self.ds_path(to), force)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if is_fault(&e, "FileAlreadyExists") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a file or a directory tree; a missing one is fine.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        match self
            .client
            .delete_datastore_file(&self.dc, &self.ds_path(rel))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_fault(&e, "FileNotFound") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
