//! Recovery is the normal start path: the VCH rebuilds its containers from the VMs it
//! finds in its pool (the truth lives in vSphere) and its start journal, then decides
//! for each what is left to do. Both steps are pure functions here; the translator
//! applies the decisions (`Translator::adopt`).

use super::platform::{Power, VmRecord};
use super::restart::Policy;
use crate::containers::{Container, Status};

/// A pool VM as a container, or `None` when it is not one (no spec or record).
/// `journal_started`: the start the VCH's journal holds for it (it wins over the
/// `vch.started` key older VCHs wrote in the VM).
pub fn recover(rec: VmRecord, journal_started: Option<String>) -> Option<Container> {
    let (Some(spec), Some(meta)) = (rec.spec, rec.meta) else {
        return None;
    };
    let started = journal_started.or(rec.started);
    let fin = rec.final_state;
    let parked = rec.power == Power::On
        && rec.guest_state.as_deref()
            == Some(container_vm::state::ContainerState::Created.as_str());
    let running = rec.power != Power::Off && !parked;
    // The final state is of the last run when it names that run's start: a started run
    // whose VM is off without it ended while nobody watched.
    let interrupted = rec.power == Power::Off
        && started
            .as_ref()
            .is_some_and(|s| fin.as_ref().map(|f| &f.started_at) != Some(s));
    Some(Container {
        parked,
        // Its exit is recorded by the start path, not by the pool watch.
        watched: interrupted,
        interrupted,
        vm_name: rec.name,
        vm: rec.vm,
        status: if rec.power == Power::Suspended {
            Status::Paused
        } else if running || interrupted {
            // An interrupted run is running until its exit is recorded.
            Status::Running
        } else if fin.is_some() {
            Status::Exited
        } else {
            Status::Created
        },
        started_at: started.or_else(|| fin.as_ref().map(|f| f.started_at.clone())),
        finished: fin,
        meta,
        spec,
        reported: Default::default(),
    })
}

/// What is left to do for a recovered container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Its run ended while the VCH was away: record the exit from its log (137 when the
    /// VM was killed), never `created`.
    RecordExit,
    /// Its VM runs: the pool watch sees it power off.
    Watch,
    /// It exited and its policy starts it again when the daemon starts.
    Restart,
    /// Nothing: created (a parked clone or a VM that never ran, whatever its log says:
    /// a parked clone's tether writes an exit record when it loses its channel), exited
    /// for good, or paused.
    Nothing,
}

pub fn action(c: &Container) -> Action {
    if c.interrupted {
        return Action::RecordExit;
    }
    match c.status {
        Status::Running => Action::Watch,
        Status::Exited => {
            let fin = c.finished.clone().unwrap_or_default();
            if Policy::of(&c.meta).restarts_at_daemon_start(&fin) {
                Action::Restart
            } else {
                Action::Nothing
            }
        }
        _ => Action::Nothing,
    }
}
