//! PropertyCollector: paged retrieval, a `watch` stream over WaitForUpdatesEx, and task
//! waiting through the collector (no sleep-polling).

use crate::client::Client;
use crate::decode;
use crate::error::{Error, Result};
use crate::types::{ObjectContent, ObjectUpdate, TaskInfo, TaskState, UpdateKind, UpdateSet};
use crate::value::{DataObject, MoRef, Value};
use futures_util::stream::{self, Stream};
use std::time::Duration;

/// How long one WaitForUpdatesEx may block on the server before it returns empty.
const WAIT_SECONDS: i64 = 30;

#[derive(Debug, Clone, PartialEq)]
pub struct PropertySpec {
    pub ty: String,
    pub all: bool,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraversalSpec {
    pub name: String,
    pub ty: String,
    pub path: String,
    pub skip: bool,
    /// Names of other traversal specs to continue with (recursion by name).
    pub select: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSpec {
    pub obj: MoRef,
    pub skip: bool,
    pub traversals: Vec<TraversalSpec>,
}

/// A `PropertyFilterSpec`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterSpec {
    pub props: Vec<PropertySpec>,
    pub objects: Vec<ObjectSpec>,
}

impl FilterSpec {
    /// Properties of one object.
    pub fn object(obj: &MoRef, paths: &[&str]) -> FilterSpec {
        FilterSpec {
            props: vec![PropertySpec {
                ty: obj.ty.clone(),
                all: false,
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }],
            objects: vec![ObjectSpec {
                obj: obj.clone(),
                skip: false,
                traversals: vec![],
            }],
        }
    }

    /// Properties of every `ty` object in a ContainerView.
    pub fn view(view: &MoRef, ty: &str, paths: &[&str]) -> FilterSpec {
        FilterSpec {
            props: vec![PropertySpec {
                ty: ty.to_string(),
                all: false,
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }],
            objects: vec![ObjectSpec {
                obj: view.clone(),
                skip: true,
                traversals: vec![TraversalSpec {
                    name: "view".into(),
                    ty: view.ty.clone(),
                    path: "view".into(),
                    skip: false,
                    select: vec![],
                }],
            }],
        }
    }

    /// Properties of the VMs in a resource pool and its child pools, recursively.
    pub fn pool_vms(pool: &MoRef, paths: &[&str]) -> FilterSpec {
        FilterSpec {
            props: vec![PropertySpec {
                ty: "VirtualMachine".into(),
                all: false,
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }],
            objects: vec![ObjectSpec {
                obj: pool.clone(),
                skip: true,
                traversals: vec![
                    TraversalSpec {
                        name: "poolToPool".into(),
                        ty: "ResourcePool".into(),
                        path: "resourcePool".into(),
                        skip: true,
                        select: vec!["poolToPool".into(), "poolToVm".into()],
                    },
                    TraversalSpec {
                        name: "poolToVm".into(),
                        ty: "ResourcePool".into(),
                        path: "vm".into(),
                        skip: false,
                        select: vec![],
                    },
                ],
            }],
        }
    }

    pub fn to_value(&self) -> Value {
        let props = self
            .props
            .iter()
            .map(|p| {
                Value::Obj(
                    DataObject::new("PropertySpec")
                        .with("type", Value::string(&p.ty))
                        .with("all", Value::bool(p.all))
                        .with(
                            "pathSet",
                            Value::strings(p.paths.iter().map(String::as_str)),
                        ),
                )
            })
            .collect();
        let objects = self
            .objects
            .iter()
            .map(|o| {
                let select = o
                    .traversals
                    .iter()
                    .map(|t| {
                        let nested = t
                            .select
                            .iter()
                            .map(|n| {
                                Value::Obj(
                                    DataObject::new("SelectionSpec").with("name", Value::string(n)),
                                )
                            })
                            .collect();
                        Value::Obj(
                            DataObject::new("TraversalSpec")
                                .with("name", Value::string(&t.name))
                                .with("type", Value::string(&t.ty))
                                .with("path", Value::string(&t.path))
                                .with("skip", Value::bool(t.skip))
                                .with("selectSet", Value::array("SelectionSpec", nested)),
                        )
                    })
                    .collect();
                Value::Obj(
                    DataObject::new("ObjectSpec")
                        .with("obj", Value::moref(&o.obj))
                        .with("skip", Value::bool(o.skip))
                        .with("selectSet", Value::array("SelectionSpec", select)),
                )
            })
            .collect();
        Value::Obj(
            DataObject::new("PropertyFilterSpec")
                .with("propSet", Value::array("PropertySpec", props))
                .with("objectSet", Value::array("ObjectSpec", objects)),
        )
    }
}

impl Client {
    fn collector(&self) -> MoRef {
        self.service_content().property_collector.clone()
    }

    /// RetrievePropertiesEx, following continuation tokens until every object is read.
    pub async fn retrieve(
        &self,
        spec: &FilterSpec,
        page_size: Option<i64>,
    ) -> Result<Vec<ObjectContent>> {
        let pc = self.collector();
        let mut options = DataObject::new("RetrieveOptions");
        if let Some(n) = page_size {
            options = options.with("maxObjects", Value::int(n));
        }
        let body = self
            .call_bytes(
                "RetrievePropertiesEx",
                &pc,
                &[
                    ("specSet", spec.to_value()),
                    ("options", Value::Obj(options)),
                ],
                None,
            )
            .await?;
        let (mut out, mut token) = decode::retrieve_result(&body)?;
        while let Some(t) = token.take().filter(|t| !t.is_empty()) {
            let body = self
                .call_bytes(
                    "ContinueRetrievePropertiesEx",
                    &pc,
                    &[("token", Value::string(&t))],
                    None,
                )
                .await?;
            let (more, next) = decode::retrieve_result(&body)?;
            out.extend(more);
            token = next;
        }
        Ok(out)
    }

    /// One property of one object (None when unset).
    pub async fn property(&self, obj: &MoRef, path: &str) -> Result<Option<Value>> {
        let got = self
            .retrieve(&FilterSpec::object(obj, &[path]), None)
            .await?;
        Ok(got
            .into_iter()
            .next()
            .and_then(|oc| oc.props.into_iter().next().map(|(_, v)| v)))
    }

    /// A stream of updates for `spec`, on a collector of its own. The first item holds an
    /// `Enter` for every object. If the collector is lost (session re-established,
    /// server restarted) the watch starts over and again reports every object as `Enter`,
    /// so consumers treat `Enter` as an upsert. Transport errors are yielded and the
    /// watch retries with the same version.
    pub fn watch(
        &self,
        spec: FilterSpec,
    ) -> impl Stream<Item = Result<Vec<ObjectUpdate>>> + Send + 'static {
        struct W {
            client: Client,
            spec: FilterSpec,
            collector: Option<MoRef>,
            version: String,
            failures: u32,
        }
        // A dropped watch destroys its collector (and filter): it would otherwise live as
        // long as the session, one per watch ever started (a VCH watches each running
        // container and each template start). Best effort, in the background.
        impl Drop for W {
            fn drop(&mut self) {
                let Some(pc) = self.collector.take() else {
                    return;
                };
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let client = self.client.clone();
                rt.spawn(async move {
                    let _ = client.call("DestroyPropertyCollector", &pc, &[]).await;
                });
            }
        }
        let w = W {
            client: self.clone(),
            spec,
            collector: None,
            version: String::new(),
            failures: 0,
        };
        stream::unfold(w, |mut w| async move {
            loop {
                if w.collector.is_none() {
                    match w.client.new_collector_with_filter(&w.spec).await {
                        Ok(c) => {
                            w.collector = Some(c);
                            w.version.clear();
                        }
                        Err(e) => {
                            w.failures += 1;
                            tokio::time::sleep(backoff(w.failures)).await;
                            return Some((Err(e), w));
                        }
                    }
                }
                let pc = w.collector.clone().expect("set above");
                let options =
                    DataObject::new("WaitOptions").with("maxWaitSeconds", Value::int(WAIT_SECONDS));
                let got = w
                    .client
                    .call_with_timeout(
                        "WaitForUpdatesEx",
                        &pc,
                        &[
                            ("version", Value::string(&w.version)),
                            ("options", Value::Obj(options)),
                        ],
                        Some(Duration::from_secs(WAIT_SECONDS as u64 + 30)),
                    )
                    .await;
                match got {
                    Ok(rv) => {
                        w.failures = 0;
                        let Some(v) = rv.into_iter().next() else {
                            continue; // timed out on the server: nothing changed
                        };
                        match UpdateSet::from_value(&v) {
                            Ok(set) => {
                                w.version = set.version.clone();
                                let updates: Vec<ObjectUpdate> =
                                    set.updates.into_iter().flat_map(|(_, u)| u).collect();
                                if updates.is_empty() {
                                    continue;
                                }
                                return Some((Ok(updates), w));
                            }
                            Err(e) => return Some((Err(e), w)),
                        }
                    }
                    Err(Error::Fault(f))
                        if matches!(
                            f.ty.as_str(),
                            "ManagedObjectNotFound" | "InvalidCollectorVersion"
                        ) =>
                    {
                        // The collector is gone: start over with a fresh one.
                        w.collector = None;
                    }
                    Err(e) => {
                        w.failures += 1;
                        tokio::time::sleep(backoff(w.failures)).await;
                        return Some((Err(e), w));
                    }
                }
            }
        })
    }

    async fn new_collector_with_filter(&self, spec: &FilterSpec) -> Result<MoRef> {
        let pc = self
            .call_moref("CreatePropertyCollector", &self.collector(), &[])
            .await?;
        self.call(
            "CreateFilter",
            &pc,
            &[
                ("spec", spec.to_value()),
                ("partialUpdates", Value::bool(false)),
            ],
        )
        .await?;
        Ok(pc)
    }

    /// Waits for a task through a PropertyCollector watch on `info`, and returns its
    /// result, or its fault as `Error::Fault`.
    pub async fn wait_for_task(&self, task: &MoRef) -> Result<Option<Value>> {
        let pc = self
            .new_collector_with_filter(&FilterSpec::object(task, &["info"]))
            .await?;
        let outcome = self.wait_on(&pc).await;
        // Best effort: the collector dies with the session anyway.
        let _ = self.call("DestroyPropertyCollector", &pc, &[]).await;
        outcome
    }

    async fn wait_on(&self, pc: &MoRef) -> Result<Option<Value>> {
        let mut version = String::new();
        loop {
            let options =
                DataObject::new("WaitOptions").with("maxWaitSeconds", Value::int(WAIT_SECONDS));
            let rv = self
                .call_with_timeout(
                    "WaitForUpdatesEx",
                    pc,
                    &[
                        ("version", Value::string(&version)),
                        ("options", Value::Obj(options)),
                    ],
                    Some(Duration::from_secs(WAIT_SECONDS as u64 + 30)),
                )
                .await?;
            let Some(v) = rv.into_iter().next() else {
                continue;
            };
            let set = UpdateSet::from_value(&v)?;
            version = set.version.clone();
            for (_, objs) in set.updates {
                for ou in objs {
                    if ou.kind == UpdateKind::Leave {
                        return Err(Error::Decode(format!("task {} vanished", ou.obj.value)));
                    }
                    for ch in ou.changes.iter().filter(|c| c.name == "info") {
                        let Some(val) = &ch.val else { continue };
                        let info = TaskInfo::from_value(val)?;
                        match info.state {
                            TaskState::Success => return Ok(info.result),
                            TaskState::Error => {
                                return Err(Error::Fault(info.error.unwrap_or_else(|| {
                                    crate::error::Fault {
                                        ty: "SystemError".into(),
                                        msg: "task failed without a fault".into(),
                                        detail: DataObject::new("SystemError"),
                                    }
                                })))
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Runs a `*_Task` method and waits for it.
    pub async fn run_task(
        &self,
        method: &str,
        this: &MoRef,
        args: &[(&str, Value)],
    ) -> Result<Option<Value>> {
        let task = self.call_moref(method, this, args).await?;
        self.wait_for_task(&task).await
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(6)).min(5_000))
}
