//! Transient (not persisted) server state: tasks, views, collectors and filters,
//! grouped with the inventory under one lock so a PropertyCollector pass sees one
//! consistent picture.

use crate::model::Inventory;
use crate::soap::Fault;
use std::collections::{HashMap, VecDeque};
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

/// Paged retrieval left over for `ContinueRetrievePropertiesEx`.
#[derive(Debug, Clone)]
pub struct PendingRetrieve {
    pub plan: crate::collector::Plan,
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
