//! Named volumes: VMDKs on the datastore (see `volumes`), in use by the containers that
//! mount them.

use super::{internal, VchBackend};
use crate::translator::{naming, volume_busy};
use docker_api::models::*;
use docker_api::{Error, Filters, Result};
use std::collections::HashMap;

pub(super) async fn volume_create(b: &VchBackend, opts: VolumeCreateOptions) -> Result<Volume> {
    match opts.driver.as_deref() {
        None | Some("") | Some("local") | Some("vsphere") => {}
        Some(other) => {
            return Err(Error::invalid(format!(
            "volume driver {other:?} is not supported by this VCH (local: a VMDK on the datastore)"
        )))
        }
    }
    let name = opts
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(naming::random_id);
    let rec = b
        .inner
        .volumes
        .create(
            &name,
            opts.labels.unwrap_or_default(),
            opts.driver_opts.unwrap_or_default(),
            false,
        )
        .await
        .map_err(volume_error)?;
    volume_json(b, &rec)
}

pub(super) async fn volume_list(b: &VchBackend, filters: Filters) -> Result<VolumeListResponse> {
    let mut vols = Vec::new();
    for rec in b.inner.volumes.list() {
        let names = filters.get("name");
        if !names.is_empty() && !names.iter().any(|n| rec.name.contains(n)) {
            continue;
        }
        let dangling = b.tr().volume_users(&rec.name, None).is_empty();
        if filters
            .get("dangling")
            .iter()
            .any(|v| (*v == "true" || *v == "1") != dangling)
        {
            continue;
        }
        let labels_ok = filters
            .get("label")
            .iter()
            .all(|l| match l.split_once('=') {
                Some((k, v)) => rec.labels.get(k).map(String::as_str) == Some(v),
                None => rec.labels.contains_key(*l),
            });
        if !labels_ok {
            continue;
        }
        vols.push(volume_json(b, &rec)?);
    }
    Ok(VolumeListResponse {
        volumes: Some(vols),
        warnings: Some(vec![]),
    })
}

pub(super) async fn volume_inspect(b: &VchBackend, name: &str) -> Result<Volume> {
    let rec = b
        .inner
        .volumes
        .get(name)
        .ok_or_else(|| Error::NoSuchVolume(name.to_string()))?;
    volume_json(b, &rec)
}

pub(super) async fn volume_remove(b: &VchBackend, name: &str, _force: bool) -> Result<()> {
    if b.inner.volumes.get(name).is_none() {
        return Err(Error::NoSuchVolume(name.to_string()));
    }
    let users = b.tr().volume_users(name, None);
    if !users.is_empty() {
        return Err(Error::Conflict(format!(
            "remove {name}: volume is in use - [{}]",
            users.join(", ")
        )));
    }
    b.inner.volumes.remove(name).await.map_err(volume_error)
}

pub(super) async fn volume_prune(b: &VchBackend, filters: Filters) -> Result<VolumePruneResponse> {
    // As dockerd 23+: only anonymous volumes unless `all=true`.
    let all = filters.get("all").iter().any(|x| *x == "true" || *x == "1");
    let mut deleted = Vec::new();
    let mut reclaimed = 0i64;
    for rec in b.inner.volumes.list() {
        if (all || rec.anonymous) && b.tr().volume_users(&rec.name, None).is_empty() {
            b.inner
                .volumes
                .remove(&rec.name)
                .await
                .map_err(volume_error)?;
            reclaimed += rec.capacity_kb * 1024;
            deleted.push(rec.name);
        }
    }
    Ok(VolumePruneResponse {
        volumes_deleted: Some(deleted),
        space_reclaimed: Some(reclaimed),
    })
}

pub(super) fn volume_json(b: &VchBackend, rec: &crate::volumes::VolumeRecord) -> Result<Volume> {
    let mut labels = rec.labels.clone();
    if rec.anonymous {
        labels.insert("com.docker.volume.anonymous".into(), String::new());
    }
    Ok(Volume {
        name: rec.name.clone(),
        driver: "local".into(),
        mountpoint: b.inner.volumes.disk_path(&rec.name),
        created_at: Some(rec.created_at.clone()),
        labels: labels.into_iter().collect(),
        scope: Some(VolumeScopeEnum::LOCAL),
        options: rec.options.clone().into_iter().collect(),
        ..Default::default()
    })
}

/// Finds or creates the volumes a create asks for.
pub(super) async fn volumes_for(
    b: &VchBackend,
    id: &str,
    body: &ContainerCreateBody,
) -> Result<Vec<crate::mounts::VolumeMountRecord>> {
    let mut out = Vec::new();
    for r in crate::mounts::requested(body).map_err(Error::invalid)? {
        let (name, anonymous) = match r.name {
            Some(n) => (n, false),
            None => (naming::random_id(), true),
        };
        if let Some(other) = b.tr().active_volume_users(&name, Some(id)).first() {
            return Err(volume_busy(&name, other).into());
        }
        b.inner
            .volumes
            .create(&name, HashMap::new(), HashMap::new(), anonymous)
            .await
            .map_err(volume_error)?;
        out.push(crate::mounts::VolumeMountRecord {
            name,
            destination: r.destination,
            rw: r.rw,
            anonymous,
        });
    }
    Ok(out)
}

pub(super) fn volume_error(e: crate::volumes::VolumeError) -> Error {
    use crate::volumes::VolumeError as V;
    match e {
        V::Invalid(m) => Error::invalid(m),
        V::NotFound(n) => Error::NoSuchVolume(n),
        // Without the URL at hand: the 503 still says vCenter is away.
        V::Vsphere(e) => crate::vsphere_errors::to_docker("", e),
        other => internal(other),
    }
}
