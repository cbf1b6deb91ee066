//! Reading the container spec the VCH wrote into guestinfo (the spec and its encoding are
//! the contract's: `container_vm::spec`).

use crate::platform::Platform;
use container_vm::spec::{ContainerSpec, SpecError};

/// Reads the spec; `Ok(None)` when there is none (a template VM waiting to be cloned).
pub fn read(p: &mut dyn Platform) -> Result<Option<ContainerSpec>, SpecError> {
    container_vm::spec::decode(|k| p.guestinfo_get(k))
}
