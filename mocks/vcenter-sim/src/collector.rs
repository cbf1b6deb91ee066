//! PropertyCollector: object-set traversal (ObjectSpec / TraversalSpec / SelectionSpec),
//! property retrieval, and the per-filter bookkeeping behind WaitForUpdatesEx.
//! It reads values through `props` and state through `state`; neither knows about it.

use crate::model::is_a;
use crate::props::{self, PropCtx};
use crate::soap::Fault;
use crate::state::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vsphere_client::value::{DataObject, MoRef, Value};
use vsphere_client::xml::Element;

fn parse_selection(el: &Element) -> Result<Selection, Fault> {
    let is_traversal =
        el.xsi_type.as_deref() == Some("TraversalSpec") || el.child("path").is_some();
    if !is_traversal {
        let name = el
            .child_text("name")
            .ok_or_else(|| Fault::invalid_argument("selectSet.name"))?;
        return Ok(Selection::Named(name.to_string()));
    }
    Ok(Selection::Traversal(TraversalSpec {
        name: el
            .child_text("name")
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        ty: el
            .child_text("type")
            .ok_or_else(|| Fault::invalid_argument("selectSet.type"))?
            .to_string(),
        path: el
            .child_text("path")
            .ok_or_else(|| Fault::invalid_argument("selectSet.path"))?
            .to_string(),
        skip: el.child_bool("skip").unwrap_or(false),
        select_set: el
            .children_named("selectSet")
            .map(parse_selection)
            .collect::<Result<_, _>>()?,
    }))
}

pub fn parse_filter_spec(el: &Element) -> Result<FilterSpec, Fault> {
    let prop_set = el
        .children_named("propSet")
        .map(|p| {
            Ok(PropSpec {
                ty: p
                    .child_text("type")
                    .ok_or_else(|| Fault::invalid_argument("propSet.type"))?
                    .to_string(),
                all: p.child_bool("all").unwrap_or(false),
                paths: p
                    .children_named("pathSet")
                    .map(|x| x.text.trim().to_string())
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, Fault>>()?;
    let object_set = el
        .children_named("objectSet")
        .map(|o| {
            Ok(ObjectSpec {
                obj: o
                    .child("obj")
                    .and_then(MoRef::from_element)
                    .ok_or_else(|| Fault::invalid_argument("objectSet.obj"))?,
                skip: o.child_bool("skip").unwrap_or(false),
                select_set: o
                    .children_named("selectSet")
                    .map(parse_selection)
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<Vec<_>, Fault>>()?;
    Ok(FilterSpec {
        prop_set,
        object_set,
        raw: el.clone(),
    })
}

struct Walker<'a> {
    st: &'a State,
    named: HashMap<String, &'a TraversalSpec>,
    visited: HashSet<(MoRef, usize)>,
    out: Vec<MoRef>,
    seen: HashSet<MoRef>,
    cx: &'a PropCtx,
}

fn gather_named<'a>(sels: &'a [Selection], into: &mut HashMap<String, &'a TraversalSpec>) {
    for s in sels {
        if let Selection::Traversal(t) = s {
            if let Some(n) = &t.name {
                if into.insert(n.clone(), t).is_none() {
                    gather_named(&t.select_set, into);
                }
            } else {
                gather_named(&t.select_set, into);
            }
        }
    }
}

impl<'a> Walker<'a> {
    fn add(&mut self, m: &MoRef) {
        if self.seen.insert(m.clone()) {
            self.out.push(m.clone());
        }
    }

    fn walk(&mut self, obj: &MoRef, sels: &'a [Selection]) -> Result<(), Fault> {
        for sel in sels {
            let ts: &'a TraversalSpec = match sel {
                Selection::Traversal(t) => t,
                Selection::Named(n) => match self.named.get(n) {
                    Some(t) => t,
                    None => return Err(Fault::invalid_argument(&format!("selectSet name {n}"))),
                },
            };
            if !is_a(&obj.ty, &ts.ty) {
                continue;
            }
            let Ok(Some(v)) = props::top_level(self.st, obj, &ts.path, self.cx) else {
                continue;
            };
            let id = ts as *const TraversalSpec as usize;
            for next in v.morefs_in() {
                if !self.visited.insert((next.clone(), id)) {
                    continue;
                }
                if !ts.skip {
                    self.add(next);
                }
                self.walk(next, &ts.select_set)?;
            }
        }
        Ok(())
    }
}

/// The objects a filter spec selects, in traversal order.
pub fn collect_objects(st: &State, spec: &FilterSpec, cx: &PropCtx) -> Result<Vec<MoRef>, Fault> {
    let mut named = HashMap::new();
    for os in &spec.object_set {
        gather_named(&os.select_set, &mut named);
    }
    let mut w = Walker {
        st,
        named,
        visited: HashSet::new(),
        out: Vec::new(),
        seen: HashSet::new(),
        cx,
    };
    for os in &spec.object_set {
        if !exists(st, &os.obj) {
            return Err(Fault::not_found(&os.obj));
        }
        if !os.skip {
            w.add(&os.obj);
        }
        w.walk(&os.obj, &os.select_set)?;
    }
    Ok(w.out)
}

/// Paths to read for an object, or None when no PropertySpec covers its type.
pub fn paths_for(ty: &str, specs: &[PropSpec]) -> Option<Vec<String>> {
    let mut paths: Vec<String> = Vec::new();
    let mut matched = false;
    for ps in specs.iter().filter(|ps| is_a(ty, &ps.ty)) {
        matched = true;
        if ps.all {
            paths.extend(props::all_properties(ty).into_iter().map(str::to_string));
        }
        paths.extend(ps.paths.iter().cloned());
    }
    if !matched {
        return None;
    }
    let mut seen = HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    Some(paths)
}

/// Reads properties for one object; `None` when the object vanished meanwhile.
pub fn read_object(
    st: &State,
    obj: &MoRef,
    paths: &[String],
    cx: &PropCtx,
) -> Result<Option<Vec<(String, Value)>>, Fault> {
    if !exists(st, obj) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        match props::property(st, obj, p, cx) {
            Ok(Some(v)) => out.push((p.clone(), v)),
            Ok(None) => {}
            Err(f) if f.ty == "ManagedObjectNotFound" => return Ok(None),
            Err(f) => return Err(f),
        }
    }
    Ok(Some(out))
}

pub fn object_content(obj: &MoRef, props: Vec<(String, Value)>) -> Value {
    let prop_set = props
        .into_iter()
        .map(|(name, val)| {
            Value::Obj(
                DataObject::new("DynamicProperty")
                    .with("name", Value::string(name))
                    .with("val", Value::Any(Box::new(val))),
            )
        })
        .collect();
    Value::Obj(
        DataObject::new("ObjectContent")
            .with("obj", Value::moref(obj))
            .with("propSet", Value::array("DynamicProperty", prop_set)),
    )
}

/// Resolves each spec set into the objects it selects, in order.
pub fn plan_retrieve(st: &State, specs: &[FilterSpec], cx: &PropCtx) -> Result<Plan, Fault> {
    let mut plan = Plan::default();
    for (i, spec) in specs.iter().enumerate() {
        plan.specs.push(Arc::new(spec.prop_set.clone()));
        for obj in collect_objects(st, spec, cx)? {
            if spec.prop_set.iter().any(|ps| is_a(&obj.ty, &ps.ty)) {
                plan.objects.push_back((obj, i));
            }
        }
    }
    Ok(plan)
}

/// Reads the properties of `objects` (taken from a plan).
pub fn retrieve_page(
    st: &State,
    specs: &[Arc<Vec<PropSpec>>],
    objects: impl IntoIterator<Item = (MoRef, usize)>,
    cx: &PropCtx,
) -> Result<Vec<Value>, Fault> {
    let mut out = Vec::new();
    for (obj, i) in objects {
        let Some(paths) = paths_for(&obj.ty, &specs[i]) else {
            continue;
        };
        if let Some(props) = read_object(st, &obj, &paths, cx)? {
            out.push(object_content(&obj, props));
        }
    }
    Ok(out)
}

/// Current state of everything a filter watches.
pub fn filter_snapshot(
    st: &State,
    spec: &FilterSpec,
    cx: &PropCtx,
) -> Result<HashMap<MoRef, ObjectReport>, Fault> {
    let mut out = HashMap::new();
    for obj in collect_objects(st, spec, cx)? {
        let Some(paths) = paths_for(&obj.ty, &spec.prop_set) else {
            continue;
        };
        if let Some(props) = read_object(st, &obj, &paths, cx)? {
            out.insert(obj, props.into_iter().collect());
        }
    }
    Ok(out)
}

fn change(name: &str, val: Option<&Value>) -> Value {
    Value::Obj(
        DataObject::new("PropertyChange")
            .with("name", Value::string(name))
            .with("op", Value::enumv("PropertyChangeOp", "assign"))
            .with("val", val.map(|v| Value::Any(Box::new(v.clone())))),
    )
}

/// ObjectUpdates turning `old` into `new`; paths are reported in the filter's order.
pub fn diff(
    old: &HashMap<MoRef, ObjectReport>,
    new: &HashMap<MoRef, ObjectReport>,
    order: &[String],
) -> Vec<Value> {
    let mut updates = Vec::new();
    let mut objs: Vec<&MoRef> = new.keys().collect();
    objs.sort();
    let sorted_paths = |r: &ObjectReport| {
        let mut ks: Vec<&String> = r.keys().collect();
        ks.sort_by_key(|k| order.iter().position(|o| o == *k).unwrap_or(usize::MAX));
        ks.into_iter().cloned().collect::<Vec<_>>()
    };
    for obj in objs {
        let now = &new[obj];
        let (kind, changes) = match old.get(obj) {
            None => (
                "enter",
                sorted_paths(now)
                    .iter()
                    .map(|p| change(p, now.get(p)))
                    .collect::<Vec<_>>(),
            ),
            Some(before) => {
                let mut ch = Vec::new();
                for p in sorted_paths(now) {
                    if before.get(&p) != now.get(&p) {
                        ch.push(change(&p, now.get(&p)));
                    }
                }
                for p in sorted_paths(before) {
                    if !now.contains_key(&p) {
                        ch.push(change(&p, None));
                    }
                }
                if ch.is_empty() {
                    continue;
                }
                ("modify", ch)
            }
        };
        updates.push(Value::Obj(
            DataObject::new("ObjectUpdate")
                .with("kind", Value::enumv("ObjectUpdateKind", kind))
                .with("obj", Value::moref(obj))
                .with("changeSet", Value::array("PropertyChange", changes)),
        ));
    }
    let mut gone: Vec<&MoRef> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    gone.sort();
    for obj in gone {
        updates.push(Value::Obj(
            DataObject::new("ObjectUpdate")
                .with("kind", Value::enumv("ObjectUpdateKind", "leave"))
                .with("obj", Value::moref(obj)),
        ));
    }
    updates
}

pub fn all_paths(spec: &FilterSpec) -> Vec<String> {
    spec.prop_set
        .iter()
        .flat_map(|p| p.paths.iter().cloned())
        .collect()
}
