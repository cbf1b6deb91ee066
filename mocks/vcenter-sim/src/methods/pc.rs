//! PropertyCollector, PropertyFilter, ViewManager and the `Fetch` accessor.

use super::{arg_elem, arg_moref, arg_text, Ctx};
use crate::collector::{self, parse_filter_spec};
use crate::model::Kind;
use crate::props::{self, PropCtx};
use crate::sim::Sim;
use crate::soap::{Call, Fault, Reply};
use crate::state::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsphere_client::value::{DataObject, MoRef, Value};
use vsphere_client::xml::Element;

/// Outstanding paged retrievals kept per collector; the oldest is dropped beyond this.
const MAX_PENDING_RETRIEVALS: usize = 64;

enum Base {
    Empty,
    Current,
    Previous,
}

impl Sim {
    pub(crate) fn fetch(&self, ctx: &Ctx, this: &MoRef, a: &Element) -> Result<Reply, Fault> {
        let prop = arg_text(a, "prop")?;
        let cx = self.prop_ctx(Some(ctx));
        let st = self.state.read();
        if !crate::state::exists(&st, this) {
            return Err(Fault::not_found(this));
        }
        match props::property(&st, this, prop, &cx)? {
            Some(v) => Ok(Reply::Typed(v)),
            None => Ok(Reply::Void),
        }
    }

    fn specs(a: &Element) -> Result<Vec<FilterSpec>, Fault> {
        let specs: Vec<FilterSpec> = a
            .children_named("specSet")
            .map(parse_filter_spec)
            .collect::<Result<_, _>>()?;
        if specs.is_empty() {
            return Err(Fault::invalid_argument("specSet"));
        }
        Ok(specs)
    }

    pub(crate) fn retrieve_properties(&self, ctx: &Ctx, a: &Element) -> Result<Reply, Fault> {
        let specs = Self::specs(a)?;
        let cx = self.prop_ctx(Some(ctx));
        let st = self.state.read();
        let plan = collector::plan_retrieve(&st, &specs, &cx)?;
        Ok(Reply::Many(collector::retrieve_page(
            &st,
            &plan.specs,
            plan.objects,
            &cx,
        )?))
    }

    fn check_collector(st: &State, ctx: &Ctx, this: &MoRef) -> Result<String, Fault> {
        let key = State::collector_key(&ctx.session, this);
        if this.value != props::property_collector().value && !st.collectors.contains_key(&key) {
            return Err(Fault::not_found(this));
        }
        Ok(key)
    }

    pub(crate) fn retrieve_properties_ex(
        &self,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let specs = Self::specs(a)?;
        let max = a
            .child("options")
            .and_then(|o| o.child_i64("maxObjects"))
            .filter(|m| *m > 0)
            .map(|m| m as usize);
        let cx = self.prop_ctx(Some(ctx));
        let (page, rest) = {
            let st = self.state.read();
            Self::check_collector(&st, ctx, this)?;
            let mut plan = collector::plan_retrieve(&st, &specs, &cx)?;
            let n = max.unwrap_or(usize::MAX).min(plan.objects.len());
            let first: Vec<_> = plan.objects.drain(..n).collect();
            (
                collector::retrieve_page(&st, &plan.specs, first, &cx)?,
                plan,
            )
        };
        let token = if rest.objects.is_empty() {
            None
        } else {
            let token = uuid::Uuid::new_v4().to_string();
            let mut st = self.state.write();
            let key = State::collector_key(&ctx.session, this);
            let coll = st.collectors.entry(key).or_default();
            while coll.pending.len() >= MAX_PENDING_RETRIEVALS {
                match coll.pending_order.pop_front() {
                    Some(old) => {
                        coll.pending.remove(&old);
                    }
                    None => break,
                }
            }
            coll.pending_order.push_back(token.clone());
            coll.pending.insert(
                token.clone(),
                PendingRetrieve {
                    plan: rest,
                    page: max.unwrap_or(usize::MAX),
                },
            );
            Some(token)
        };
        Ok(retrieve_result(page, token))
    }

    pub(crate) fn continue_retrieve(
        &self,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let token = arg_text(a, "token")?;
        let cx = self.prop_ctx(Some(ctx));
        let key = State::collector_key(&ctx.session, this);
        let (specs, batch, done) = {
            let mut st = self.state.write();
            let Some(coll) = st.collectors.get_mut(&key) else {
                return Err(Fault::invalid_argument("token"));
            };
            let Some(p) = coll.pending.get_mut(token) else {
                return Err(Fault::invalid_argument("token"));
            };
            let n = p.page.min(p.plan.objects.len());
            let batch: Vec<_> = p.plan.objects.drain(..n).collect();
            let specs = p.plan.specs.clone();
            let done = p.plan.objects.is_empty();
            if done {
                coll.pending.remove(token);
                coll.pending_order.retain(|t| t != token);
            }
            (specs, batch, done)
        };
        let st = self.state.read();
        let page = collector::retrieve_page(&st, &specs, batch, &cx)?;
        Ok(retrieve_result(page, (!done).then(|| token.to_string())))
    }

    pub(crate) fn cancel_retrieve(
        &self,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let token = arg_text(a, "token")?;
        let key = State::collector_key(&ctx.session, this);
        if let Some(c) = self.state.write().collectors.get_mut(&key) {
            c.pending.remove(token);
            c.pending_order.retain(|t| t != token);
        }
        Ok(Reply::Void)
    }

    pub(crate) fn create_filter(
        &self,
        ctx: &Ctx,
        this: &MoRef,
        a: &Element,
    ) -> Result<Reply, Fault> {
        let spec = parse_filter_spec(arg_elem(a, "spec")?)?;
        let partial = a.child_bool("partialUpdates").unwrap_or(false);
        let cx = self.prop_ctx(Some(ctx));
        self.write(|st| {
            let key = Self::check_collector(st, ctx, this)?;
            // Validates objects and property paths now, as vCenter does.
            collector::filter_snapshot(st, &spec, &cx)?;
            let id = format!("session[{}]filter-{}", ctx.session, st.transient_id("f"));
            let moref = MoRef::new("PropertyFilter", id.clone());
            st.filters.insert(
                id,
                FilterData {
                    moref: moref.clone(),
                    collector: this.clone(),
                    session: ctx.session.clone(),
                    spec,
                    partial_updates: partial,
                    reported: HashMap::new(),
                    previous: HashMap::new(),
                },
            );
            st.collectors
                .entry(key)
                .or_default()
                .filters
                .push(moref.clone());
            Ok(Reply::One(Value::MoRef(moref)))
        })
    }

    pub(crate) fn destroy_filter(&self, ctx: &Ctx, this: &MoRef) -> Result<Reply, Fault> {
        self.write(|st| {
            let Some(f) = st.filters.remove(&this.value) else {
                return Err(Fault::not_found(this));
            };
            let key = State::collector_key(&ctx.session, &f.collector);
            if let Some(c) = st.collectors.get_mut(&key) {
                c.filters.retain(|m| m != this);
            }
            Ok(Reply::Void)
        })
    }

    pub(crate) fn create_collector(&self, ctx: &Ctx) -> Result<Reply, Fault> {
        let mut st = self.state.write();
        let id = format!("session[{}]{}", ctx.session, st.transient_id("collector"));
        let moref = MoRef::new("PropertyCollector", id);
        st.collectors.insert(
            State::collector_key(&ctx.session, &moref),
            CollectorData::default(),
        );
        Ok(Reply::One(Value::MoRef(moref)))
    }

    pub(crate) fn destroy_collector(&self, ctx: &Ctx, this: &MoRef) -> Result<Reply, Fault> {
        self.write(|st| {
            let key = State::collector_key(&ctx.session, this);
            match st.collectors.remove(&key) {
                Some(c) => {
                    for f in c.filters {
                        st.filters.remove(&f.value);
                    }
                    Ok(Reply::Void)
                }
                // The session's default collector cannot be destroyed.
                None if this.value == props::property_collector().value => Err(
                    Fault::invalid_request("the default PropertyCollector cannot be destroyed"),
                ),
                None => Err(Fault::not_found(this)),
            }
        })
    }

    pub(crate) fn cancel_wait(&self, ctx: &Ctx, this: &MoRef) -> Result<Reply, Fault> {
        self.write(|st| {
            let key = State::collector_key(&ctx.session, this);
            // Only a wait in progress is cancelled; a later wait is not affected.
            if let Some(c) = st.collectors.get_mut(&key) {
                if c.waiters > 0 {
                    c.cancelled = true;
                }
            }
        });
        Ok(Reply::Void)
    }

    /// WaitForUpdatesEx, WaitForUpdates and CheckForUpdates.
    pub(crate) async fn wait_for_updates(
        self: &Arc<Self>,
        ctx: &Ctx,
        call: &Call,
    ) -> Result<Reply, Fault> {
        let a = &call.args;
        let version = a.child_text("version").unwrap_or("").to_string();
        let max_wait = match call.method.as_str() {
            "CheckForUpdates" => Some(Duration::ZERO),
            "WaitForUpdates" => None,
            _ => a
                .child("options")
                .and_then(|o| o.child_i64("maxWaitSeconds"))
                .map(|s| Duration::from_secs(s.max(0) as u64)),
        };
        let deadline = max_wait.map(|d| Instant::now() + d);
        let cx = self.prop_ctx(Some(ctx));
        let key = {
            let st = self.state.read();
            Self::check_collector(&st, ctx, &call.this)?
        };
        let is_default = call.this.value == props::property_collector().value;
        {
            let mut st = self.state.write();
            st.collectors.entry(key.clone()).or_default().waiters += 1;
        }
        // Decrements the waiter count however the wait ends (including a dropped request).
        struct Waiting<'a> {
            sim: &'a Sim,
            key: String,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if let Some(c) = self.sim.state.write().collectors.get_mut(&self.key) {
                    c.waiters = c.waiters.saturating_sub(1);
                    if c.waiters == 0 {
                        c.cancelled = false;
                    }
                }
            }
        }
        let _waiting = Waiting {
            sim: self,
            key: key.clone(),
        };
        let mut rx = self.changes.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let mut st = self.state.write();
                match st.collectors.get_mut(&key) {
                    Some(c) if c.cancelled => {
                        c.cancelled = false;
                        return Err(request_canceled());
                    }
                    Some(_) => {}
                    // Destroyed while we waited (the default collector never is).
                    None if !is_default => return Err(request_canceled()),
                    None => {}
                }
                if let Some(set) = compute_updates(&mut st, &key, &version, &cx)? {
                    return Ok(Reply::One(set));
                }
            }
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(Reply::Void);
                    }
                    let _ = tokio::time::timeout(d - now, rx.changed()).await;
                }
                None => {
                    if rx.changed().await.is_err() {
                        return Ok(Reply::Void);
                    }
                }
            }
        }
    }

    pub(crate) fn create_container_view(&self, ctx: &Ctx, a: &Element) -> Result<Reply, Fault> {
        let container = arg_moref(a, "container")?;
        let types: Vec<String> = a
            .children_named("type")
            .map(|t| t.text.trim().to_string())
            .collect();
        let recursive = a.child_bool("recursive").unwrap_or(false);
        let mut st = self.state.write();
        match st.inv.get(&container).map(|e| &e.kind) {
            None => return Err(Fault::not_found(&container)),
            Some(
                Kind::Folder(_)
                | Kind::Datacenter(_)
                | Kind::Cluster(_)
                | Kind::Pool(_)
                | Kind::Host(_),
            ) => {}
            Some(_) => return Err(Fault::invalid_argument("container")),
        }
        let id = format!("session[{}]{}", ctx.session, st.transient_id("view"));
        let moref = MoRef::new("ContainerView", id.clone());
        st.views.insert(
            id,
            ViewData {
                moref: moref.clone(),
                session: ctx.session.clone(),
                view: View::Container {
                    container,
                    types,
                    recursive,
                },
            },
        );
        Ok(Reply::One(Value::MoRef(moref)))
    }

    pub(crate) fn create_list_view(&self, ctx: &Ctx, a: &Element) -> Result<Reply, Fault> {
        let objects: Vec<MoRef> = a
            .children_named("obj")
            .filter_map(MoRef::from_element)
            .collect();
        let mut st = self.state.write();
        let id = format!("session[{}]{}", ctx.session, st.transient_id("listview"));
        let moref = MoRef::new("ListView", id.clone());
        st.views.insert(
            id,
            ViewData {
                moref: moref.clone(),
                session: ctx.session.clone(),
                view: View::List { objects },
            },
        );
        Ok(Reply::One(Value::MoRef(moref)))
    }

    pub(crate) fn destroy_view(&self, this: &MoRef) -> Result<Reply, Fault> {
        self.write(|st| match st.views.remove(&this.value) {
            Some(_) => Ok(Reply::Void),
            None => Err(Fault::not_found(this)),
        })
    }
}

fn retrieve_result(objects: Vec<Value>, token: Option<String>) -> Reply {
    if objects.is_empty() && token.is_none() {
        return Reply::Void;
    }
    Reply::One(Value::Obj(
        DataObject::new("RetrieveResult")
            .with("token", token.map(Value::string))
            .with("objects", Value::array("ObjectContent", objects)),
    ))
}

/// Builds the next UpdateSet for a collector, or None when nothing changed since the
/// version the client holds.
fn compute_updates(
    st: &mut State,
    key: &str,
    version: &str,
    cx: &PropCtx,
) -> Result<Option<Value>, Fault> {
    let coll = st.collectors.entry(key.to_string()).or_default().clone();
    // (The caller checked that a non-default collector still exists.)
    let sent: u64 = if version.is_empty() {
        0
    } else {
        version.parse().map_err(|_| invalid_version(version))?
    };
    let base = if version.is_empty() {
        Base::Empty
    } else if sent == coll.version {
        Base::Current
    } else if Some(sent) == coll.prev_version {
        Base::Previous
    } else {
        return Err(invalid_version(version));
    };
    let mut filter_updates = Vec::new();
    let mut new_states = Vec::new();
    for f in &coll.filters {
        let Some(fd) = st.filters.get(&f.value) else {
            continue;
        };
        let now = match collector::filter_snapshot(st, &fd.spec, cx) {
            Ok(s) => s,
            // The watched root object is gone: everything it selected leaves.
            Err(e) if e.ty == "ManagedObjectNotFound" => HashMap::new(),
            Err(e) => return Err(e),
        };
        let empty = HashMap::new();
        let before = match base {
            Base::Empty => &empty,
            Base::Current => &fd.reported,
            Base::Previous => &fd.previous,
        };
        let updates = collector::diff(before, &now, &collector::all_paths(&fd.spec));
        if !updates.is_empty() {
            filter_updates.push(Value::Obj(
                DataObject::new("PropertyFilterUpdate")
                    .with("filter", Value::MoRef(f.clone()))
                    .with("objectSet", Value::array("ObjectUpdate", updates)),
            ));
        }
        new_states.push((f.value.clone(), before.clone(), now));
    }
    if filter_updates.is_empty() {
        return Ok(None);
    }
    for (id, before, now) in new_states {
        if let Some(fd) = st.filters.get_mut(&id) {
            fd.previous = before;
            fd.reported = now;
        }
    }
    let c = st.collectors.entry(key.to_string()).or_default();
    c.prev_version = Some(sent);
    c.version += 1;
    Ok(Some(Value::Obj(
        DataObject::new("UpdateSet")
            .with("version", Value::string(c.version.to_string()))
            .with(
                "filterSet",
                Value::array("PropertyFilterUpdate", filter_updates),
            )
            .with("truncated", Value::bool(false)),
    )))
}

fn request_canceled() -> Fault {
    Fault::new("RequestCanceled", "The request was canceled by the user.")
}

fn invalid_version(v: &str) -> Fault {
    Fault::new(
        "InvalidCollectorVersion",
        format!("The collector version '{v}' is not the current or previous version"),
    )
}
