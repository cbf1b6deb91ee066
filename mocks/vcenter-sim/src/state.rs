//! Transient (not persisted) server state: tasks, views, collectors and filters,
//! grouped with the inventory under one lock so a PropertyCollector pass sees one
//! consistent picture.
//!
//! Also the questions about that state that every reader asks: whether an object exists
//! ([`exists`]), what a view holds ([`view_members`]), and a paged retrieval's [`Plan`].
//! The property builder (`props`), the PropertyCollector (`collector`) and the dispatcher
//! all need them, so they live here, below all three.

use crate::model::{is_a, Inventory, Kind};
use crate::soap::Fault;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use vsphere_client::value::{MoRef, Value};
use vsphere_client::xml::Element;

/// Completed tasks kept for `recentTask` and late `info` reads, oldest dropped first.
pub const TASK_HISTORY: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Queued,
    Running,
    Success,
    Error,
}

impl TaskState {
    pub fn wire(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TaskData {
    pub moref: MoRef,
    pub key: String,
    pub method: String,
    pub description_id: String,
    pub entity: Option<MoRef>,
    pub entity_name: Option<String>,
    pub state: TaskState,
    pub progress: Option<i64>,
    pub result: Option<Value>,
    pub error: Option<Fault>,
    pub user: String,
    pub queue_time: String,
    pub start_time: Option<String>,
    pub complete_time: Option<String>,
    pub event_chain_id: i64,
}

#[derive(Debug, Clone)]
pub enum View {
    Container {
        container: MoRef,
        types: Vec<String>,
        recursive: bool,
    },
    List {
        objects: Vec<MoRef>,
    },
}

#[derive(Debug, Clone)]
pub struct ViewData {
    pub moref: MoRef,
    pub session: String,
    pub view: View,
}

/// A parsed `PropertyFilterSpec`.
#[derive(Debug, Clone)]
pub struct FilterSpec {
    pub prop_set: Vec<PropSpec>,
    pub object_set: Vec<ObjectSpec>,
    /// The original element, echoed back by the filter's `spec` property.
    pub raw: Element,
}

#[derive(Debug, Clone)]
pub struct PropSpec {
    pub ty: String,
    pub all: bool,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub obj: MoRef,
    pub skip: bool,
    pub select_set: Vec<Selection>,
}

#[derive(Debug, Clone)]
pub enum Selection {
    /// A `SelectionSpec` that refers to a named `TraversalSpec`.
    Named(String),
    Traversal(TraversalSpec),
}

#[derive(Debug, Clone)]
pub struct TraversalSpec {
    pub name: Option<String>,
    pub ty: String,
    pub path: String,
    pub skip: bool,
    pub select_set: Vec<Selection>,
}

/// What one filter last reported for one object: path -> value.
pub type ObjectReport = HashMap<String, Value>;

#[derive(Debug, Clone)]
pub struct FilterData {
    pub moref: MoRef,
    pub collector: MoRef,
    pub session: String,
    pub spec: FilterSpec,
    pub partial_updates: bool,
    /// State reported at the collector's current version.
    pub reported: HashMap<MoRef, ObjectReport>,
    /// State at the previous version, so a client that lost a response can resume.
    pub previous: HashMap<MoRef, ObjectReport>,
}

/// Objects to read and, per object, which of the call's property specs applies. Specs
/// are shared by index so a 100K-object plan stays a list of references.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub specs: Vec<Arc<Vec<PropSpec>>>,
    pub objects: VecDeque<(MoRef, usize)>,
}

/// Paged retrieval left over for `ContinueRetrievePropertiesEx`.
#[derive(Debug, Clone)]
pub struct PendingRetrieve {
    pub plan: Plan,
    pub page: usize,
}

#[derive(Debug, Clone, Default)]
pub struct CollectorData {
    pub filters: Vec<MoRef>,
    /// Version of the last update set returned (0 = none yet).
    pub version: u64,
    /// The version the client sent for that last update set (0 for the initial ""), so
    /// a client that lost the response can ask again with it.
    pub prev_version: Option<u64>,
    /// Set by CancelWaitForUpdates while a waiter is blocked; it fails with RequestCanceled.
    pub cancelled: bool,
    /// WaitForUpdates calls currently blocked on this collector.
    pub waiters: u32,
    pub pending: HashMap<String, PendingRetrieve>,
    /// Tokens in creation order, so the oldest is dropped first at the cap.
    pub pending_order: VecDeque<String>,
}

#[derive(Default)]
pub struct State {
    pub inv: Inventory,
    pub tasks: HashMap<String, TaskData>,
    pub task_order: VecDeque<String>,
    pub views: HashMap<String, ViewData>,
    /// Keyed by `session/collector-id`: the singleton collector is per session in vSphere.
    pub collectors: HashMap<String, CollectorData>,
    pub filters: HashMap<String, FilterData>,
    pub next_transient: u64,
}

impl State {
    pub fn transient_id(&mut self, prefix: &str) -> String {
        self.next_transient += 1;
        format!("{prefix}-{}", self.next_transient)
    }

    pub fn collector_key(session: &str, collector: &MoRef) -> String {
        format!("{session}/{}", collector.value)
    }

    pub fn add_task(&mut self, t: TaskData) {
        self.task_order.push_back(t.moref.value.clone());
        self.tasks.insert(t.moref.value.clone(), t);
        while self.task_order.len() > TASK_HISTORY {
            if let Some(old) = self.task_order.pop_front() {
                let done = self
                    .tasks
                    .get(&old)
                    .map(|t| matches!(t.state, TaskState::Success | TaskState::Error))
                    .unwrap_or(true);
                if done {
                    self.tasks.remove(&old);
                } else {
                    self.task_order.push_back(old);
                    break;
                }
            }
        }
    }
}

/// Does the object exist (entity or transient object)?
pub fn exists(st: &State, m: &MoRef) -> bool {
    if st.inv.get(m).is_some() {
        return true;
    }
    match m.ty.as_str() {
        "Task" => st.tasks.contains_key(&m.value),
        "ContainerView" | "ListView" => st.views.contains_key(&m.value),
        "PropertyFilter" => st.filters.contains_key(&m.value),
        "ServiceInstance" | "PropertyCollector" | "ViewManager" | "SessionManager"
        | "SearchIndex" | "FileManager" | "VirtualDiskManager" | "TaskManager" => true,
        "HostNetworkSystem" => st
            .inv
            .get(&MoRef::new(
                "HostSystem",
                m.value.trim_start_matches("networkSystem-"),
            ))
            .is_some(),
        "HostDatastoreBrowser" => st
            .inv
            .get(&MoRef::new(
                "Datastore",
                m.value.trim_start_matches("datastoreBrowser-"),
            ))
            .is_some(),
        "VirtualMachineSnapshot" => st.inv.all_of_kind("VirtualMachine").any(|e| match &e.kind {
            Kind::Vm(v) => v.snapshots.iter().any(|s| s.moref == *m),
            _ => false,
        }),
        _ => false,
    }
}

/// Members of a view, in inventory order.
pub fn view_members(st: &State, view: &View) -> Vec<MoRef> {
    match view {
        View::List { objects } => objects.iter().filter(|m| exists(st, m)).cloned().collect(),
        View::Container {
            container,
            types,
            recursive,
        } => {
            let mut out = Vec::new();
            let mut seen = HashSet::new();
            let matches = |m: &MoRef| types.is_empty() || types.iter().any(|t| is_a(&m.ty, t));
            let Some(root) = st.inv.get(container) else {
                return out;
            };
            let mut stack: Vec<MoRef> = st.inv.children(root);
            stack.reverse();
            while let Some(m) = stack.pop() {
                if !seen.insert(m.clone()) {
                    continue;
                }
                if matches(&m) {
                    out.push(m.clone());
                }
                if *recursive {
                    if let Some(e) = st.inv.get(&m) {
                        let mut kids = st.inv.children(e);
                        kids.reverse();
                        stack.extend(kids);
                    }
                }
            }
            out
        }
    }
}
