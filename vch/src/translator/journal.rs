//! `Starts`: the record of acknowledged starts the translator keeps (see
//! `start_journal`, the durable one). A trait so tests keep it in memory.

use crate::start_journal::StartJournal;
use docker_api::async_trait;

#[async_trait]
pub trait Starts: Send + Sync + 'static {
    /// The recorded start of container `id`'s latest run.
    fn started(&self, id: &str) -> Option<String>;
    /// Records (durably) that `id` started at `started`; `""` takes a failed start back.
    async fn record(&self, id: &str, started: &str) -> std::io::Result<()>;
    /// Drops a removed container.
    async fn forget(&self, id: &str);
}

#[async_trait]
impl Starts for StartJournal {
    fn started(&self, id: &str) -> Option<String> {
        StartJournal::started(self, id)
    }
    async fn record(&self, id: &str, started: &str) -> std::io::Result<()> {
        StartJournal::record(self, id, started).await
    }
    async fn forget(&self, id: &str) {
        StartJournal::forget(self, id).await
    }
}
