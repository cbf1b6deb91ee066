//! Keeps the template VM alive for the VCH's whole life. The template is found or made
//! once at start (template::ensure), but vSphere can take it away at any time: an admin
//! powers it off or deletes it, a host crashes, a restarted vCenter reports every VM
//! off. The pool watch (backend) reports such events here; the supervisor then makes a
//! new template (the same `ensure`), while container creates wait for it, bounded.

use crate::target::Target;
use crate::template::Template;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use vsphere_client::MoRef;

/// How long a container create waits for a template being healed before it gives up.
pub const READY_BOUND: Duration = Duration::from_secs(60);

pub struct TemplateSupervisor {
    /// `Some` while the template is powered on and ready; `None` while it is healed.
    ready: watch::Sender<Option<Template>>,
    /// The template VM last known, also while it is healed (to recognise its events).
    vm: parking_lot::Mutex<MoRef>,
    control_uri: String,
    /// One healer at a time; a request that arrives meanwhile makes it check again.
    healing: tokio::sync::Mutex<()>,
    again: AtomicBool,
    /// Why the last heal attempt failed, told to creates that waited in vain.
    last_error: parking_lot::Mutex<Option<String>>,
}

impl TemplateSupervisor {
    pub fn new(tpl: Template, control_uri: String) -> TemplateSupervisor {
        TemplateSupervisor {
            vm: parking_lot::Mutex::new(tpl.vm.clone()),
            ready: watch::channel(Some(tpl)).0,
            control_uri,
            healing: tokio::sync::Mutex::new(()),
            again: AtomicBool::new(false),
            last_error: parking_lot::Mutex::new(None),
        }
    }

    pub fn is_template(&self, vm: &MoRef) -> bool {
        *self.vm.lock() == *vm
    }

    /// The ready template, waiting up to `bound` while it is healed.
    pub async fn get(&self, bound: Duration) -> Result<Template, String> {
        let mut rx = self.ready.subscribe();
        let ready = tokio::time::timeout(bound, async {
            rx.wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|t| t.clone())
        })
        .await;
        match ready {
            Ok(Some(t)) => Ok(t),
            _ => {
                let last = match self.last_error.lock().clone() {
                    Some(e) => format!(" (last attempt: {e})"),
                    None => String::new(),
                };
                Err(format!(
                    "the template VM that containers are cloned from is not ready (it is being \
                     powered on or recreated after it went away) and did not become ready \
                     within {} s{last}; try again later",
                    bound.as_secs()
                ))
            }
        }
    }

    /// Makes the template ready again: powered on, or recreated if it is gone. Creates
    /// wait meanwhile. Returns when the template is ready (or another healer runs).
    pub async fn heal(&self, t: &Target, why: &str) {
        self.again.store(true, Ordering::SeqCst);
        self.mark_unready();
        let Ok(_one) = self.healing.try_lock() else {
            return; // the running healer sees `again` and checks once more
        };
        let mut failures = 0u32;
        while self.again.swap(false, Ordering::SeqCst) {
            tracing::warn!(why, "template VM: healing (power on or recreate)");
            self.mark_unready();
            loop {
                match crate::template::ensure(t, &self.control_uri).await {
                    Ok(tpl) => {
                        tracing::info!(vm = %tpl.vm.value, "template VM ready again");
                        self.mark_ready(tpl);
                        break;
                    }
                    Err(e) => {
                        // vCenter may be away: keep trying, creates answer 503 meanwhile.
                        failures += 1;
                        tracing::warn!("template VM: healing failed ({e}); retrying");
                        *self.last_error.lock() = Some(e.to_string());
                        tokio::time::sleep(backoff(failures)).await;
                    }
                }
            }
        }
    }
}

/// Whether an instant clone failed because the template VM is on but does not answer
/// (the simulator's runtime says "not answering" when the parent's monitor gives no
/// reply): a power cycle is the cure, as for a hung VM on ESXi.
pub fn not_answering(e: &vsphere_client::Error) -> bool {
    matches!(e, vsphere_client::Error::Fault(f) if f.msg.contains("not answering"))
}

impl TemplateSupervisor {
    /// Power-cycles a template that is on but hung, then heals it (power on again).
    pub async fn reset(&self, t: &Target, why: &str) {
        self.mark_unready();
        let vm = self.vm.lock().clone();
        tracing::warn!(why, vm = %vm.value, "template VM: not answering, powering it off");
        if let Err(e) = t.client.power_off(&vm).await {
            tracing::warn!("template VM: power off failed: {e}");
        }
        self.heal(t, why).await;
    }
}

impl TemplateSupervisor {
    /// Not ready from now on: creates wait instead of cloning a parent that is off.
    fn mark_unready(&self) {
        self.ready.send_replace(None);
    }

    fn mark_ready(&self, tpl: Template) {
        *self.vm.lock() = tpl.vm.clone();
        *self.last_error.lock() = None;
        self.ready.send_replace(Some(tpl));
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis((200u64 << failures.min(5)).min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(vm: &str) -> Template {
        Template {
            vm: MoRef::new("VirtualMachine", vm),
            controller_key: 1000,
            log_port_key: 9001,
        }
    }

    #[tokio::test]
    async fn creates_wait_for_the_healed_template_and_give_up_after_the_bound() {
        let s = std::sync::Arc::new(TemplateSupervisor::new(tpl("vm-1"), "tcp://x".into()));
        assert_eq!(
            s.get(Duration::from_millis(10)).await.unwrap().vm.value,
            "vm-1"
        );
        s.mark_unready();
        *s.last_error.lock() = Some("vCenter is unreachable".into());
        let err = s.get(Duration::from_millis(20)).await.unwrap_err();
        assert!(
            err.contains("not ready") && err.contains("vCenter is unreachable"),
            "{err}"
        );
        // A create waiting meanwhile gets the new template as soon as it is ready.
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.get(Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        s.mark_ready(tpl("vm-2"));
        assert_eq!(waiter.await.unwrap().unwrap().vm.value, "vm-2");
        assert!(s.is_template(&MoRef::new("VirtualMachine", "vm-2")));
        assert!(!s.is_template(&MoRef::new("VirtualMachine", "vm-1")));
    }
}
