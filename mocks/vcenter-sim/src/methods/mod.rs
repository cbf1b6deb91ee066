//! vim25 method implementations, one module per managed object family. Each is an
//! `impl Sim` block so the dispatcher in `dispatch.rs` stays a flat routing table; they
//! build on the core in `sim.rs` (state, write path, tasks) and never on the dispatcher.

mod entity;
mod files;
mod hot_plug;
mod pc;
mod search;
mod vm;

pub use files::{parse_ds_path, resolve_ds_path, DsPath};

use crate::soap::Fault;
use vsphere_client::value::MoRef;
use vsphere_client::xml::Element;

/// The caller of a method (owned by the core, which authenticates it).
pub use crate::sim::Ctx;

pub(crate) fn arg_moref(args: &Element, name: &str) -> Result<MoRef, Fault> {
    args.child(name)
        .and_then(MoRef::from_element)
        .ok_or_else(|| Fault::invalid_argument(name))
}

pub(crate) fn opt_moref(args: &Element, name: &str) -> Option<MoRef> {
    args.child(name).and_then(MoRef::from_element)
}

pub(crate) fn arg_text<'a>(args: &'a Element, name: &str) -> Result<&'a str, Fault> {
    args.child_text(name)
        .ok_or_else(|| Fault::invalid_argument(name))
}

pub(crate) fn arg_elem<'a>(args: &'a Element, name: &str) -> Result<&'a Element, Fault> {
    args.child(name)
        .ok_or_else(|| Fault::invalid_argument(name))
}
