//! Datastore files: `[ds] path` resolution, FileManager, VirtualDiskManager and
//! HostDatastoreBrowser. Datastores are directories on this machine; every path a
//! client sends is confined to its datastore's directory.

use super::{arg_text, Ctx};
use crate::model::{Inventory, Kind};
use crate::sim::Sim;
use crate::soap::{Fault, Reply};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use vsphere_client::value::{DataObject, MoRef, Value};
use vsphere_client::xml::Element;

#[derive(Debug, Clone, PartialEq)]
pub struct DsPath {
    pub datastore: String,
    /// Relative path inside the datastore, `/`-separated, no leading slash.
    pub path: String,
}

impl DsPath {
    pub fn display(&self) -> String {
        format!("[{}] {}", self.datastore, self.path)
    }
}

fn invalid_path(s: &str) -> Fault {
    Fault::new(
        "InvalidDatastorePath",
        format!("Invalid datastore path '{s}'."),
    )
    .with("name", Value::string(s))
    .with("datastorePath", Value::string(s))
}

/// Parses `[datastore1] dir/file.vmdk`.
pub fn parse_ds_path(s: &str) -> Result<DsPath, Fault> {
    let t = s.trim();
    let rest = t.strip_prefix('[').ok_or_else(|| invalid_path(s))?;
    let (ds, path) = rest.split_once(']').ok_or_else(|| invalid_path(s))?;
    if ds.is_empty() {
        return Err(invalid_path(s));
    }
    Ok(DsPath {
        datastore: ds.to_string(),
        path: path.trim().trim_start_matches('/').to_string(),
    })
}

/// Maps a datastore path to the local file, refusing anything that would leave the
/// datastore directory (`..`, absolute paths, NUL).
pub fn resolve_ds_path(inv: &Inventory, p: &DsPath) -> Result<PathBuf, Fault> {
    let Some(Kind::Datastore(d)) = inv.datastore_by_name(&p.datastore).map(|e| &e.kind) else {
        return Err(Fault::new(
            "InvalidDatastore",
            format!("Invalid datastore '{}'.", p.datastore),
        )
        .with("name", Value::string(&p.datastore)));
    };
    let mut out = PathBuf::from(&d.dir);
    if p.path.contains('\0') {
        return Err(invalid_path(&p.display()));
    }
    for c in Path::new(&p.path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(invalid_path(&p.display())),
        }
    }
    Ok(out)
}

/// A datastore's root directory can be neither deleted nor replaced.
fn refuse_root(p: &DsPath) -> Result<(), Fault> {
    if p.path.trim_matches('/').is_empty() {
        return Err(Fault::new(
            "CannotDeleteFile",
            format!(
                "Cannot delete or replace the root of datastore '{}'.",
                p.datastore
            ),
        )
        .with("file", Value::string(p.display())));
    }
    Ok(())
}

fn io_fault(file: &str, e: std::io::Error) -> Fault {
    match e.kind() {
        std::io::ErrorKind::NotFound => Fault::file_not_found(file),
        std::io::ErrorKind::AlreadyExists => Fault::file_already_exists(file),
        _ => Fault::new(
            "CannotCreateFile",
            format!("Cannot complete file operation on {file}: {e}"),
        )
        .with("file", Value::string(file)),
    }
}

/// Writes a monolithic flat VMDK: a text descriptor and a sparse `-flat.vmdk` extent.
pub fn create_flat_vmdk(
    path: &Path,
    capacity_kb: i64,
    adapter: &str,
    display: &str,
) -> Result<(), Fault> {
    if path.exists() {
        return Err(Fault::file_already_exists(display));
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| invalid_path(display))?;
    let flat_name = format!("{stem}-flat.vmdk");
    let flat = path.with_file_name(&flat_name);
    let sectors = capacity_kb.max(0) * 2;
    let f = std::fs::File::create(&flat).map_err(|e| io_fault(display, e))?;
    f.set_len((capacity_kb.max(0) as u64) * 1024)
        .map_err(|e| io_fault(display, e))?;
    let descriptor = format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\nRW {sectors} VMFS \"{flat_name}\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"{adapter}\"\nddb.thinProvisioned = \"1\"\nddb.uuid = \"{}\"\nddb.virtualHWVersion = \"19\"\n",
        uuid::Uuid::new_v4()
    );
    std::fs::write(path, descriptor).map_err(|e| io_fault(display, e))
}

/// Writes a linked-clone delta disk whose descriptor names its parent.
pub fn create_delta_vmdk(path: &Path, parent_hint: &str, display: &str) -> Result<(), Fault> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| invalid_path(display))?;
    let delta = format!("{stem}-delta.vmdk");
    std::fs::File::create(path.with_file_name(&delta)).map_err(|e| io_fault(display, e))?;
    let descriptor = format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\nparentCID=fffffffe\ncreateType=\"vmfsSparse\"\nparentFileNameHint=\"{parent_hint}\"\n\n# Extent description\nRW 0 VMFSSPARSE \"{delta}\"\n"
    );
    std::fs::write(path, descriptor).map_err(|e| io_fault(display, e))
}

/// The extent files a descriptor names (so disk copy/delete handles both parts).
fn vmdk_extents(descriptor: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(descriptor) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.starts_with("RW ") || l.starts_with("RDONLY "))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|name| !name.contains('/') && !name.contains(".."))
        .map(|name| descriptor.with_file_name(name))
        .collect()
}

fn copy_recursive(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_recursive(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], n) || (!n.is_empty() && m(p, &n[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &n[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), name.as_bytes())
}

fn file_info(entry: &std::fs::DirEntry) -> Option<Value> {
    let name = entry.file_name().to_string_lossy().into_owned();
    let meta = entry.metadata().ok()?;
    let ty = if meta.is_dir() {
        "FolderFileInfo"
    } else if name.ends_with("-flat.vmdk") || name.ends_with("-delta.vmdk") {
        // Extents are shown through their descriptor, as on ESXi.
        return None;
    } else if name.ends_with(".vmdk") {
        "VmDiskFileInfo"
    } else if name.ends_with(".vmx") {
        "VmConfigFileInfo"
    } else if name.ends_with(".log") {
        "VmLogFileInfo"
    } else {
        "FileInfo"
    };
    let modified = meta.modified().ok().map(|t| {
        chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    Some(Value::Obj(
        DataObject::new(ty)
            .with("path", Value::string(&name))
            .with("fileSize", Value::long(meta.len() as i64))
            .with("modification", modified.map(Value::datetime)),
    ))
}

impl Sim {
    fn local_path(&self, raw: &str) -> Result<(DsPath, PathBuf), Fault> {
        let p = parse_ds_path(raw)?;
        let local = self.read_inv(|inv| resolve_ds_path(inv, &p))?;
        Ok((p, local))
    }

    pub(crate) fn make_directory(&self, a: &Element) -> Result<Reply, Fault> {
        let name = arg_text(a, "name")?;
        let parents = a.child_bool("createParentDirectories").unwrap_or(false);
        let (_, local) = self.local_path(name)?;
        if local.exists() {
            return Err(Fault::file_already_exists(name));
        }
        let r = if parents {
            std::fs::create_dir_all(&local)
        } else {
            std::fs::create_dir(&local)
        };
        r.map_err(|e| io_fault(name, e))?;
        Ok(Reply::Void)
    }

    pub(crate) fn delete_datastore_file(
        self: &Arc<Self>,
        ctx: &Ctx,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let name = arg_text(a, "name")?.to_string();
        let (p, local) = self.local_path(&name)?;
        refuse_root(&p)?;
        self.run_task(ctx, "DeleteDatastoreFile_Task", None, move |_| async move {
            let meta = std::fs::symlink_metadata(&local).map_err(|e| io_fault(&name, e))?;
            if meta.is_dir() {
                std::fs::remove_dir_all(&local)
            } else {
                std::fs::remove_file(&local)
            }
            .map_err(|e| io_fault(&name, e))?;
            Ok(None)
        })
    }

    pub(crate) fn move_datastore_file(
        self: &Arc<Self>,
        ctx: &Ctx,
        a: &Element,
        copy: bool,
    ) -> Result<Reply, Fault> {
        let src = arg_text(a, "sourceName")?.to_string();
        let dst = arg_text(a, "destinationName")?.to_string();
        let force = a.child_bool("force").unwrap_or(false);
        let (src_path, from) = self.local_path(&src)?;
        let (dst_path, to) = self.local_path(&dst)?;
        refuse_root(&dst_path)?;
        if !copy {
            refuse_root(&src_path)?;
        }
        let method = if copy {
            "CopyDatastoreFile_Task"
        } else {
            "MoveDatastoreFile_Task"
        };
        self.run_task(ctx, method, None, move |_| async move {
            if !from.exists() {
                return Err(Fault::file_not_found(&src));
            }
            if to.exists() {
                if !force {
                    return Err(Fault::file_already_exists(&dst));
                }
                if to.is_dir() {
                    std::fs::remove_dir_all(&to)
                } else {
                    std::fs::remove_file(&to)
                }
                .map_err(|e| io_fault(&dst, e))?;
            }
            if copy {
                copy_recursive(&from, &to)
            } else {
                std::fs::rename(&from, &to)
            }
            .map_err(|e| io_fault(&dst, e))?;
            Ok(None)
        })
    }

    pub(crate) fn create_virtual_disk(
        self: &Arc<Self>,
        ctx: &Ctx,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let name = arg_text(a, "name")?.to_string();
        let spec = a
            .child("spec")
            .ok_or_else(|| Fault::invalid_argument("spec"))?;
        let capacity_kb = spec
            .child_i64("capacityKb")
            .ok_or_else(|| Fault::invalid_argument("spec.capacityKb"))?;
        if capacity_kb < 0 {
            return Err(Fault::invalid_argument("spec.capacityKb"));
        }
        let adapter = spec
            .child_text("adapterType")
            .unwrap_or("lsiLogic")
            .to_string();
        let (_, local) = self.local_path(&name)?;
        self.run_task(ctx, "CreateVirtualDisk_Task", None, move |_| async move {
            create_flat_vmdk(&local, capacity_kb, &adapter, &name)?;
            Ok(Some(Value::string(name)))
        })
    }

    pub(crate) fn copy_virtual_disk(
        self: &Arc<Self>,
        ctx: &Ctx,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let src = arg_text(a, "sourceName")?.to_string();
        let dst = arg_text(a, "destName")?.to_string();
        let force = a.child_bool("force").unwrap_or(false);
        let (_, from) = self.local_path(&src)?;
        let (_, to) = self.local_path(&dst)?;
        self.run_task(ctx, "CopyVirtualDisk_Task", None, move |_| async move {
            if !from.is_file() {
                return Err(Fault::file_not_found(&src));
            }
            if to.exists() && !force {
                return Err(Fault::file_already_exists(&dst));
            }
            let to_stem = to
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("disk")
                .to_string();
            let from_stem = from
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("disk")
                .to_string();
            let mut descriptor = std::fs::read_to_string(&from).map_err(|e| io_fault(&src, e))?;
            for extent in vmdk_extents(&from) {
                let ext_name = extent
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let new_name = ext_name.replacen(&from_stem, &to_stem, 1);
                std::fs::copy(&extent, to.with_file_name(&new_name))
                    .map_err(|e| io_fault(&src, e))?;
                descriptor =
                    descriptor.replace(&format!("\"{ext_name}\""), &format!("\"{new_name}\""));
            }
            std::fs::write(&to, descriptor).map_err(|e| io_fault(&dst, e))?;
            Ok(None)
        })
    }

    pub(crate) fn delete_virtual_disk(
        self: &Arc<Self>,
        ctx: &Ctx,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let name = arg_text(a, "name")?.to_string();
        let (_, local) = self.local_path(&name)?;
        self.run_task(ctx, "DeleteVirtualDisk_Task", None, move |_| async move {
            if !local.is_file() {
                return Err(Fault::file_not_found(&name));
            }
            for extent in vmdk_extents(&local) {
                let _ = std::fs::remove_file(extent);
            }
            std::fs::remove_file(&local).map_err(|e| io_fault(&name, e))?;
            Ok(None)
        })
    }

    pub(crate) fn search_datastore(
        self: &Arc<Self>,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
        recursive: bool,
    ) -> Result<Reply, Fault> {
        let raw = arg_text(a, "datastorePath")?.to_string();
        let patterns: Vec<String> = a
            .child("searchSpec")
            .map(|s| {
                s.children_named("matchPattern")
                    .map(|p| p.text.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let (p, local) = self.local_path(&raw)?;
        let ds = self.read_inv(|inv| inv.datastore_by_name(&p.datastore).map(|e| e.moref.clone()));
        let ds = ds.ok_or_else(|| Fault::invalid_argument("datastorePath"))?;
        if this.value.trim_start_matches("datastoreBrowser-") != ds.value {
            return Err(Fault::invalid_argument("datastorePath"));
        }
        let method = if recursive {
            "SearchDatastoreSubFolders_Task"
        } else {
            "SearchDatastore_Task"
        };
        self.run_task(ctx, method, Some(&ds.clone()), move |_| async move {
            if !local.is_dir() {
                return Err(Fault::file_not_found(&raw));
            }
            let mut results = Vec::new();
            let mut stack = vec![(local.clone(), p.path.clone())];
            while let Some((dir, rel)) = stack.pop() {
                let mut files = Vec::new();
                let mut entries: Vec<_> = std::fs::read_dir(&dir)
                    .map_err(|e| io_fault(&raw, e))?
                    .filter_map(Result::ok)
                    .collect();
                entries.sort_by_key(|e| e.file_name());
                for e in &entries {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                    if recursive && is_dir {
                        let child = if rel.is_empty() {
                            name.clone()
                        } else {
                            format!("{rel}/{name}")
                        };
                        stack.push((e.path(), child));
                    }
                    if !patterns.is_empty() && !patterns.iter().any(|pat| glob_match(pat, &name)) {
                        continue;
                    }
                    if let Some(info) = file_info(e) {
                        files.push(info);
                    }
                }
                let folder = if rel.is_empty() {
                    format!("[{}]", p.datastore)
                } else {
                    format!("[{}] {}", p.datastore, rel)
                };
                results.push(Value::Obj(
                    DataObject::new("HostDatastoreBrowserSearchResults")
                        .with("datastore", Value::MoRef(ds.clone()))
                        .with("folderPath", Value::string(folder))
                        .with("file", Value::array("FileInfo", files)),
                ));
                if !recursive {
                    break;
                }
            }
            if recursive {
                Ok(Some(Value::array(
                    "HostDatastoreBrowserSearchResults",
                    results,
                )))
            } else {
                Ok(results.into_iter().next())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_paths_parse_and_confine() {
        let p = parse_ds_path("[datastore1] vm1/vm1.vmx").unwrap();
        assert_eq!(p.datastore, "datastore1");
        assert_eq!(p.path, "vm1/vm1.vmx");
        assert!(parse_ds_path("vm1/vm1.vmx").is_err());
        assert!(parse_ds_path("[] x").is_err());
        let mut inv = Inventory::default();
        inv.insert(crate::model::Entity {
            moref: MoRef::new("Datastore", "datastore-1"),
            name: "ds".into(),
            parent: None,
            kind: Kind::Datastore(crate::model::DatastoreData {
                dir: "/srv/ds".into(),
                capacity: 1,
                hosts: vec![],
                url: "ds:///srv/ds/".into(),
            }),
        });
        let ok = resolve_ds_path(&inv, &parse_ds_path("[ds] a/b").unwrap()).unwrap();
        assert_eq!(ok, PathBuf::from("/srv/ds/a/b"));
        let escape = resolve_ds_path(&inv, &parse_ds_path("[ds] a/../../etc/passwd").unwrap());
        assert_eq!(escape.unwrap_err().ty, "InvalidDatastorePath");
        let missing = resolve_ds_path(&inv, &parse_ds_path("[nope] a").unwrap());
        assert_eq!(missing.unwrap_err().ty, "InvalidDatastore");
    }

    #[test]
    fn glob() {
        assert!(glob_match("*.vmdk", "a.vmdk"));
        assert!(!glob_match("*.vmdk", "a.vmx"));
        assert!(glob_match("a?c", "abc"));
    }
}
