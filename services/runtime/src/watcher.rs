//! Waiting for render records to change, for any number of waiters, on one shared KV watch.
//!
//! A `watch` per waiter would create an ephemeral consumer per request; nats-server allows
//! 1,000 and keeps each for 30 s after use, so a busy gateway would be refused new ones. One
//! long-lived watch of the whole bucket feeds every waiter instead, and is re-created (with a
//! catch-up read of every waited-for key) whenever the connection drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use tokio::sync::watch;

use crate::jetstream::Pipeline;
use crate::record::RenderRecord;

/// The newest record seen for a key, with its KV revision.
type Latest = Option<(u64, RenderRecord)>;
type Waiters = Arc<Mutex<HashMap<String, watch::Sender<Latest>>>>;

/// Shares one bucket watch among all waiters.
#[derive(Clone)]
pub struct RecordWatcher {
    pipeline: Pipeline,
    waiters: Waiters,
}

impl RecordWatcher {
    /// Starts the shared watch on a background task.
    pub fn start(pipeline: Pipeline) -> Self {
        let watcher = Self {
            pipeline,
            waiters: Arc::default(),
        };
        tokio::spawn(watcher.clone().run());
        watcher
    }

    async fn run(self) {
        loop {
            match self.pipeline.renders.watch_all().await {
                Ok(mut updates) => {
                    // Anything that changed while we were not watching.
                    self.catch_up().await;
                    while let Some(update) = updates.next().await {
                        match update {
                            // Only records somebody waits for are worth parsing.
                            Ok(entry)
                                if entry.operation == Operation::Put
                                    && self.is_waited_for(&entry.key) =>
                            {
                                if let Ok(record) = RenderRecord::from_bytes(&entry.value) {
                                    notify(&self.waiters, entry.revision, record);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "render watch interrupted");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot watch render records yet"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn catch_up(&self) {
        let keys: Vec<String> = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for key in keys {
            self.refresh(&key).await;
        }
    }

    /// Reads a key's current record and passes it to its waiters.
    async fn refresh(&self, key: &str) {
        if let Ok(Some(entry)) = self.pipeline.renders.entry(key).await
            && entry.operation == Operation::Put
            && let Ok(record) = RenderRecord::from_bytes(&entry.value)
        {
            notify(&self.waiters, entry.revision, record);
        }
    }

    fn is_waited_for(&self, key: &str) -> bool {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// Starts following a render's record. Register before submitting: every change from
    /// then on reaches the waiter, so the submission's own read is all it needs besides.
    pub fn waiter(&self, render_id: &str) -> Waiter {
        Waiter::new(&self.waiters, render_id)
    }
}

/// Passes a record to its waiters, unless they have seen a newer revision already (the
/// watch and direct reads can deliver in either order). Waiters wake for final records
/// only; the others just become the latest seen.
fn notify(waiters: &Waiters, revision: u64, record: RenderRecord) {
    let waiters = waiters.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sender) = waiters.get(&record.render_id) {
        tracing::debug!(render_id = %record.render_id, status = ?record.status, "record update for a waiter");
        sender.send_if_modified(|latest| {
            if latest.as_ref().is_some_and(|(seen, _)| *seen >= revision) {
                return false;
            }
            let wake = record.is_final();
            *latest = Some((revision, record));
            wake
        });
    }
}

/// One caller following one render's record; see [`RecordWatcher::waiter`].
pub struct Waiter {
    waiters: Waiters,
    render_id: String,
    receiver: watch::Receiver<Latest>,
}

impl Waiter {
    fn new(waiters: &Waiters, render_id: &str) -> Self {
        let receiver = waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(render_id.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        Waiter {
            waiters: waiters.clone(),
            render_id: render_id.to_owned(),
            receiver,
        }
    }

    /// Tells the waiter about a record the caller read or wrote itself at `revision`.
    pub fn seen(&self, revision: u64, record: RenderRecord) {
        notify(&self.waiters, revision, record);
    }

    /// Waits until the record is final (completed or failed) or `timeout` passes, and
    /// returns the latest record seen (`None` if none was).
    pub async fn wait(mut self, timeout: Duration) -> Option<RenderRecord> {
        let receiver = &mut self.receiver;
        let _ = tokio::time::timeout(timeout, async {
            loop {
                if receiver
                    .borrow_and_update()
                    .as_ref()
                    .is_some_and(|(_, record)| record.is_final())
                {
                    return;
                }
                if receiver.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        self.receiver
            .borrow()
            .as_ref()
            .map(|(_, record)| record.clone())
    }
}

impl Drop for Waiter {
    /// The last waiter for a key removes its slot.
    fn drop(&mut self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // This waiter's receiver still counts until the end of `drop`.
        if waiters
            .get(&self.render_id)
            .is_some_and(|s| s.receiver_count() <= 1)
        {
            waiters.remove(&self.render_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avatar_domain::RenderStatus;

    fn record(status: RenderStatus) -> RenderRecord {
        let spec = avatar_domain::RenderSpec {
            text: "Hello.".into(),
            voice_id: "voice".into(),
            speed: 1.0,
            viseme_set: Default::default(),
        };
        let mut record = RenderRecord::pending("id".into(), spec, "submission".into());
        record.status = status;
        record
    }

    fn waiter(waiters: &Waiters) -> Waiter {
        Waiter::new(waiters, "id")
    }

    #[tokio::test]
    async fn an_older_revision_arriving_late_does_not_replace_a_newer_one() {
        let waiters = Waiters::default();
        let waiter = waiter(&waiters);
        waiter.seen(7, record(RenderStatus::Completed));
        // The watch delivering the pending record written before.
        notify(&waiters, 5, record(RenderStatus::Pending));
        let latest = waiter.wait(Duration::from_secs(5)).await.unwrap();
        assert_eq!(latest.status, RenderStatus::Completed);
    }

    #[tokio::test]
    async fn a_waiter_returns_on_the_final_record_and_times_out_with_the_latest() {
        let waiters = Waiters::default();
        let waiter = waiter(&waiters);
        waiter.seen(1, record(RenderStatus::Pending));
        notify(&waiters, 2, record(RenderStatus::Rendering));
        let started = std::time::Instant::now();
        let latest = waiter.wait(Duration::from_millis(200)).await.unwrap();
        assert_eq!(latest.status, RenderStatus::Rendering);
        assert!(started.elapsed() >= Duration::from_millis(200));

        let waiter = super::tests::waiter(&waiters);
        let completer = {
            let waiters = waiters.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                notify(&waiters, 3, record(RenderStatus::Failed));
            })
        };
        let started = std::time::Instant::now();
        let latest = waiter.wait(Duration::from_secs(10)).await.unwrap();
        assert_eq!(latest.status, RenderStatus::Failed);
        assert!(started.elapsed() < Duration::from_secs(5));
        completer.await.unwrap();
    }

    #[tokio::test]
    async fn the_last_waiter_for_a_key_removes_its_slot() {
        let waiters = Waiters::default();
        let first = waiter(&waiters);
        let second = waiter(&waiters);
        drop(first);
        assert!(waiters.lock().unwrap().contains_key("id"));
        drop(second);
        assert!(!waiters.lock().unwrap().contains_key("id"));
    }
}
