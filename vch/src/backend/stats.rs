//! `docker stats`: usage from the guest (the tether reads the container's /proc, as a
//! guest agent on a real VM would), limits from vSphere (the VM's memory and vCPUs). CPU
//! percentages need a system-wide CPU time to compare with: a VM's is its elapsed time
//! times its vCPUs, so `system_cpu_usage` accumulates the guest clock's progress times
//! the VM's vCPU count. See docs/container-vm.md.

use super::VchBackend;
use crate::containers::Status;
use container_vm::ops::OpsRequest;
use container_vm::ops::Sample;
use docker_api::models::{
    ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerPidsStats,
    ContainerStatsResponse, ContainerThrottlingData,
};
use docker_api::options::StatsOptions;
use docker_api::Result;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use vsphere_client::{FilterSpec, MoRef};

/// dockerd's "never" for `read`/`preread`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

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

fn cpu_stats(cpu_ns: u64, system_ns: u64, cpus: i64) -> ContainerCpuStats {
    ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(cpu_ns),
            usage_in_kernelmode: Some(0),
            usage_in_usermode: Some(0),
            percpu_usage: None,
        }),
        system_cpu_usage: Some(system_ns),
        online_cpus: Some(cpus as u32),
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(0),
            throttled_periods: Some(0),
            throttled_time: Some(0),
        }),
    }
}

/// CPU figures before the first sample: nothing to compare with.
fn no_cpu_stats() -> ContainerCpuStats {
    ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(0),
            ..Default::default()
        }),
        throttling_data: Some(Default::default()),
        ..Default::default()
    }
}

impl State {
    async fn sample(&mut self) -> Result<(Sample, i64, i64)> {
        let (id, mut s) = self
            .b
            .guest_request(&self.id, "docker stats", &OpsRequest::Stats)
            .await?;
        let sample: Sample = self.b.guest_answer_as(&id, &mut s).await?;
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
            ZERO_TIME.to_string()
        } else {
            pre.read.clone()
        };
        let pre_cpu = if self.prev.is_some() {
            cpu_stats(pre.cpu_ns, pre.system_ns, pre.cpus)
        } else {
            no_cpu_stats()
        };
        Ok(ContainerStatsResponse {
            read: Some(s.read.clone()),
            preread: Some(preread),
            pids_stats: Some(ContainerPidsStats {
                current: Some(s.pids),
                limit: None,
            }),
            cpu_stats: Some(cpu_stats(now.cpu_ns, now.system_ns, now.cpus)),
            precpu_stats: Some(pre_cpu),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(s.memory_bytes),
                limit: Some(limit.max(0) as u64),
                stats: Some(Default::default()),
                ..Default::default()
            }),
            ..self.blank()
        })
    }

    /// The fields every answer has; usage zero.
    fn blank(&self) -> ContainerStatsResponse {
        ContainerStatsResponse {
            id: Some(self.id.clone()),
            name: Some(format!("/{}", self.name)),
            read: Some(ZERO_TIME.into()),
            preread: Some(ZERO_TIME.into()),
            pids_stats: Some(Default::default()),
            num_procs: Some(0),
            cpu_stats: Some(no_cpu_stats()),
            precpu_stats: Some(no_cpu_stats()),
            memory_stats: Some(Default::default()),
            blkio_stats: Some(Default::default()),
            storage_stats: Some(Default::default()),
            networks: None,
        }
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
        Ok(self.blank())
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
