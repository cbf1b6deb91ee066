//! Typed views of the vim25 data objects the VCH reads, built from decoded values.
//! Fields we do not model stay reachable through the `Value` they came from.

use crate::error::{Error, Fault, Result};
use crate::soap::fault_from_localized;
use crate::value::{DataObject, MoRef, Value};

fn req_moref(o: &DataObject, name: &str, ty: &str) -> Result<MoRef> {
    o.get(name)
        .and_then(Value::as_moref)
        .cloned()
        .ok_or_else(|| Error::Decode(format!("{ty}.{name} is missing")))
}

fn text(o: &DataObject, name: &str) -> String {
    o.text(name).unwrap_or_default().trim().to_string()
}

#[derive(Debug, Clone, PartialEq)]
pub struct AboutInfo {
    pub name: String,
    pub full_name: String,
    pub version: String,
    pub build: String,
    pub api_type: String,
    pub api_version: String,
    pub instance_uuid: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceContent {
    pub root_folder: MoRef,
    pub property_collector: MoRef,
    pub view_manager: Option<MoRef>,
    pub session_manager: Option<MoRef>,
    pub search_index: Option<MoRef>,
    pub file_manager: Option<MoRef>,
    pub virtual_disk_manager: Option<MoRef>,
    pub task_manager: Option<MoRef>,
    pub about: AboutInfo,
}

impl ServiceContent {
    pub fn from_value(v: &Value) -> Result<ServiceContent> {
        let o = v
            .as_obj()
            .ok_or_else(|| Error::Decode("ServiceContent is not an object".into()))?;
        let opt = |n: &str| o.get(n).and_then(Value::as_moref).cloned();
        let about = o
            .get("about")
            .and_then(Value::as_obj)
            .ok_or_else(|| Error::Decode("ServiceContent.about is missing".into()))?;
        Ok(ServiceContent {
            root_folder: req_moref(o, "rootFolder", "ServiceContent")?,
            property_collector: req_moref(o, "propertyCollector", "ServiceContent")?,
            view_manager: opt("viewManager"),
            session_manager: opt("sessionManager"),
            search_index: opt("searchIndex"),
            file_manager: opt("fileManager"),
            virtual_disk_manager: opt("virtualDiskManager"),
            task_manager: opt("taskManager"),
            about: AboutInfo {
                name: text(about, "name"),
                full_name: text(about, "fullName"),
                version: text(about, "version"),
                build: text(about, "build"),
                api_type: text(about, "apiType"),
                api_version: text(about, "apiVersion"),
                instance_uuid: text(about, "instanceUuid"),
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserSession {
    pub key: String,
    pub user_name: String,
    pub login_time: String,
}

impl UserSession {
    pub fn from_value(v: &Value) -> Result<UserSession> {
        let o = v
            .as_obj()
            .ok_or_else(|| Error::Decode("UserSession is not an object".into()))?;
        Ok(UserSession {
            key: text(o, "key"),
            user_name: text(o, "userName"),
            login_time: text(o, "loginTime"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Queued,
    Running,
    Success,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    pub task: MoRef,
    pub key: String,
    pub name: String,
    pub entity: Option<MoRef>,
    pub state: TaskState,
    pub progress: Option<i64>,
    pub result: Option<Value>,
    pub error: Option<Fault>,
    pub start_time: Option<String>,
    pub complete_time: Option<String>,
}

impl TaskInfo {
    pub fn from_value(v: &Value) -> Result<TaskInfo> {
        let o = v
            .as_obj()
            .ok_or_else(|| Error::Decode("TaskInfo is not an object".into()))?;
        let state = match o.text("state").map(str::trim) {
            Some("queued") => TaskState::Queued,
            Some("running") => TaskState::Running,
            Some("success") => TaskState::Success,
            Some("error") => TaskState::Error,
            other => return Err(Error::Decode(format!("unknown task state {other:?}"))),
        };
        Ok(TaskInfo {
            task: req_moref(o, "task", "TaskInfo")?,
            key: text(o, "key"),
            name: text(o, "name"),
            entity: o.get("entity").and_then(Value::as_moref).cloned(),
            state,
            progress: o.i64("progress"),
            result: o.get("result").cloned(),
            error: o.get("error").map(fault_from_localized),
            start_time: o.text("startTime").map(str::to_string),
            complete_time: o.text("completeTime").map(str::to_string),
        })
    }
}

/// One object's properties from RetrieveProperties(Ex).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectContent {
    pub obj: MoRef,
    pub props: Vec<(String, Value)>,
}

impl ObjectContent {
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.props.iter().find(|(n, _)| n == path).map(|(_, v)| v)
    }

    pub fn text(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_text)
    }

    pub fn from_value(v: &Value) -> Result<ObjectContent> {
        let o = v
            .as_obj()
            .ok_or_else(|| Error::Decode("ObjectContent is not an object".into()))?;
        let obj = req_moref(o, "obj", "ObjectContent")?;
        let props = o
            .fields
            .iter()
            .filter(|(n, _)| n == "propSet")
            .filter_map(|(_, p)| p.as_obj())
            .filter_map(|p| Some((p.text("name")?.trim().to_string(), p.get("val")?.clone())))
            .collect();
        Ok(ObjectContent { obj, props })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Enter,
    Modify,
    Leave,
}

/// One `PropertyChange`; `val` None means the property became unset.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyChange {
    pub name: String,
    pub op: String,
    pub val: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectUpdate {
    pub kind: UpdateKind,
    pub obj: MoRef,
    pub changes: Vec<PropertyChange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSet {
    pub version: String,
    pub updates: Vec<(MoRef, Vec<ObjectUpdate>)>,
    pub truncated: bool,
}

impl UpdateSet {
    pub fn from_value(v: &Value) -> Result<UpdateSet> {
        let o = v
            .as_obj()
            .ok_or_else(|| Error::Decode("UpdateSet is not an object".into()))?;
        let mut updates = Vec::new();
        for (_, fs) in o.fields.iter().filter(|(n, _)| n == "filterSet") {
            let Some(fs) = fs.as_obj() else { continue };
            let filter = req_moref(fs, "filter", "PropertyFilterUpdate")?;
            let mut objs = Vec::new();
            for (_, ou) in fs.fields.iter().filter(|(n, _)| n == "objectSet") {
                let Some(ou) = ou.as_obj() else { continue };
                let kind = match ou.text("kind").map(str::trim) {
                    Some("enter") => UpdateKind::Enter,
                    Some("leave") => UpdateKind::Leave,
                    _ => UpdateKind::Modify,
                };
                let changes = ou
                    .fields
                    .iter()
                    .filter(|(n, _)| n == "changeSet")
                    .filter_map(|(_, c)| c.as_obj())
                    .map(|c| PropertyChange {
                        name: text(c, "name"),
                        op: text(c, "op"),
                        val: c.get("val").cloned(),
                    })
                    .collect();
                objs.push(ObjectUpdate {
                    kind,
                    obj: req_moref(ou, "obj", "ObjectUpdate")?,
                    changes,
                });
            }
            updates.push((filter, objs));
        }
        Ok(UpdateSet {
            version: text(o, "version"),
            updates,
            truncated: o
                .text("truncated")
                .map(|t| t.trim() == "true")
                .unwrap_or(false),
        })
    }
}
