//! `docker stats`: usage from the guest (the tether reads the container's /proc, as a
//! guest agent on a real VM would), limits from vSphere (the VM's memory and vCPUs). CPU
//! percentages need a system-wide CPU time to compare with: a VM's is its elapsed time
//! times its vCPUs, so `system_cpu_usage` accumulates the guest clock's progress times
//! the VM's vCPU count. See docs/container-vm.md.

use super::{internal, VchBackend};
use crate::containers::Status;
use container_vm::ops::OpsRequest;
use container_vm::ops::Sample;
use docker_api::models::ContainerStatsResponse;
use docker_api::options::StatsOptions;
use docker_api::Result;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use vsphere_client::{FilterSpec, MoRef};

/// dockerd samples once a second.
const PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// What the previous sample left for the next one's `precpu_stats`.
#[derive(Clone, Default)]
struct Prev {
    read: String,
    cpu_ns: u64,
    system_ns: u64,
    clock_ns: u64,
    cpus: i64,
}

struct State {
    b: VchBackend,
    id: String,
    name: String,
    vm: MoRef,
    prev: Option<Prev>,
    /// Sleep before the next sample.
    wait: bool,
    done: bool,
    stream: bool,
}

/// The VM's memory (bytes) and vCPUs, as vSphere has them now.
async fn hardware(b: &VchBackend, vm: &MoRef) -> Result<(i64, i64)> {
    let objs = b
        .inner
        .t
        .client
        .retrieve(
            &FilterSpec::object(vm, &["config.hardware.memoryMB", "config.hardware.numCPU"]),
            None,
        )
        .await
        .map_err(|e| b.vs(e))?;
    let num = |p: &str| {
        objs.first()
            .and_then(|o| o.text(p))
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    Ok((
        num("config.hardware.memoryMB") << 20,
        num("config.hardware.numCPU").max(1),
    ))
}

fn cpu_json(cpu_ns: u64, system_ns: u64, cpus: i64) -> serde_json::Value {
    serde_json::json!({
        "cpu_usage": {"total_usage": cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": system_ns,
        "online_cpus": cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

impl State {
    async fn sample(&mut self) -> Result<(Sample, i64, i64)> {
        let (id, mut s) = self
            .b
            .guest_request(&self.id, "docker stats", &OpsRequest::Stats)
            .await?;
        let v = self.b.guest_answer(&id, &mut s).await?;
        let sample: Sample = serde_json::from_value(v).map_err(internal)?;
        let (limit, cpus) = hardware(&self.b, &self.vm).await?;
        Ok((sample, limit, cpus))
    }

    /// Folds a sample into the running totals; returns this sample's `Prev`.
    fn advance(&self, s: &Sample, cpus: i64) -> Prev {
        let system_ns = match &self.prev {
            Some(p) => p.system_ns + s.clock_ns.saturating_sub(p.clock_ns) * p.cpus.max(1) as u64,
            None => s.clock_ns * cpus as u64,
        };
        Prev {
            read: s.read.clone(),
            cpu_ns: s.cpu_ns,
            system_ns,
            clock_ns: s.clock_ns,
            cpus,
        }
    }

    fn render(&self, s: &Sample, now: &Prev, limit: i64) -> Result<ContainerStatsResponse> {
        let zero = Prev::default();
        let pre = self.prev.as_ref().unwrap_or(&zero);
        let preread = if pre.read.is_empty() {
            "0001-01-01T00:00:00Z".to_string()
        } else {
            pre.read.clone()
        };
        let pre_cpu = if self.prev.is_some() {
            cpu_json(pre.cpu_ns, pre.system_ns, pre.cpus)
        } else {
            serde_json::json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}})
        };
        serde_json::from_value(serde_json::json!({
            "id": self.id, "name": format!("/{}", self.name), "os_type": "linux",
            "read": s.read, "preread": preread,
            "pids_stats": {"current": s.pids},
            "num_procs": 0,
            "cpu_stats": cpu_json(now.cpu_ns, now.system_ns, now.cpus),
            "precpu_stats": pre_cpu,
            "memory_stats": {"usage": s.memory_bytes, "limit": limit, "stats": {}},
            "blkio_stats": {}, "storage_stats": {},
        }))
        .map_err(internal)
    }

    fn paused(&self, limit: i64, cpus: i64) -> Result<ContainerStatsResponse> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let s = Sample {
            read: now,
            ..Default::default()
        };
        let p = Prev {
            cpus,
            ..Default::default()
        };
        let mut r = self.render(&s, &p, limit)?;
        // Without a guest clock there is no CPU time to compare: no percentage.
        r.precpu_stats = r.cpu_stats.clone();
        Ok(r)
    }

    /// A stopped container: zeros, as dockerd reports.
    fn idle(&self) -> Result<ContainerStatsResponse> {
        serde_json::from_value(serde_json::json!({
            "id": self.id, "name": format!("/{}", self.name), "os_type": "linux",
            "read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z",
            "pids_stats": {}, "num_procs": 0, "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "memory_stats": {}, "blkio_stats": {}, "storage_stats": {},
        }))
        .map_err(internal)
    }

    async fn next(mut self) -> Option<(Result<ContainerStatsResponse>, State)> {
        if self.done {
            return None;
        }
        if self.wait {
            tokio::time::sleep(PERIOD).await;
        }
        self.wait = true;
        let status = self.b.get(&self.id).map(|c| c.status);
        if let Ok(Status::Paused) = status {
            // A suspended VM runs nothing and its guest cannot answer: no usage, the
            // VM's limits.
            let out = match hardware(&self.b, &self.vm).await {
                Ok((limit, cpus)) => self.paused(limit, cpus),
                Err(e) => Err(e),
            };
            self.done = !self.stream;
            return Some((out, self));
        }
        let running = status.map(|s| s == Status::Running);
        if !matches!(running, Ok(true)) {
            self.done = true;
            return match running {
                Ok(_) => Some((self.idle(), self)),
                Err(e) => Some((Err(e), self)),
            };
        }
        let (s, limit, cpus) = match self.sample().await {
            Ok(x) => x,
            Err(e) => {
                self.done = true;
                return Some((Err(e), self));
            }
        };
        let now = self.advance(&s, cpus);
        let out = self.render(&s, &now, limit);
        self.prev = Some(now);
        self.done = !self.stream;
        Some((out, self))
    }
}

impl VchBackend {
    pub(super) async fn stats(
        &self,
        key: &str,
        opts: StatsOptions,
    ) -> Result<BoxStream<'static, Result<ContainerStatsResponse>>> {
        let id = self.resolve(key)?;
        let c = self.get(&id)?;
        let mut st = State {
            b: self.clone(),
            id,
            name: c.meta.name.clone(),
            vm: c.vm.clone(),
            prev: None,
            wait: false,
            done: false,
            stream: opts.stream,
        };
        // Unless one-shot, the first answer already carries a previous sample (dockerd
        // does the same), so a CPU percentage can be computed from it.
        if !opts.one_shot && c.status == Status::Running {
            let (s, _, cpus) = st.sample().await?;
            st.prev = Some(st.advance(&s, cpus));
            st.wait = true;
        }
        Ok(futures_util::stream::unfold(st, State::next).boxed())
    }
}
