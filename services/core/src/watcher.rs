//! Waiting for render records to change, for any number of waiters, on one shared KV watch.
//!
//! A `watch` per waiter would create an ephemeral consumer per request; nats-server allows
//! 1,000 and keeps each for 30 s after use, so a busy gateway would be refused new ones. One
//! long-lived watch of the whole bucket feeds every waiter instead, and is re-created (with a
//! catch-up read of every waited-for key) whenever the connection drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use tokio::sync::watch;

use crate::jetstream::Pipeline;
use crate::record::RenderRecord;

type Waiters = Arc<Mutex<HashMap<String, watch::Sender<Option<RenderRecord>>>>>;

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
                            Ok(entry) if entry.operation == Operation::Put => {
                                if let Ok(record) = RenderRecord::from_bytes(&entry.value) {
                                    self.notify(record);
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
            .expect("waiters")
            .keys()
            .cloned()
            .collect();
        for key in keys {
            if let Ok(Some(value)) = self.pipeline.renders.get(key).await
                && let Ok(record) = RenderRecord::from_bytes(&value)
            {
                self.notify(record);
            }
        }
    }

    fn notify(&self, record: RenderRecord) {
        let waiters = self.waiters.lock().expect("waiters");
        if let Some(sender) = waiters.get(&record.render_id) {
            sender.send_replace(Some(record));
        }
    }

    /// Waits until the render's record is final (completed or failed) or `timeout` passes,
    /// and returns the latest record seen (`None` if there is none at all).
    pub async fn wait(&self, render_id: &str, timeout: Duration) -> Option<RenderRecord> {
        let mut receiver = {
            let mut waiters = self.waiters.lock().expect("waiters");
            waiters
                .entry(render_id.to_owned())
                .or_insert_with(|| watch::channel(None).0)
                .subscribe()
        };
        // Subscribed first, then read: an update in between is not lost.
        if let Ok(Some(value)) = self.pipeline.renders.get(render_id).await
            && let Ok(record) = RenderRecord::from_bytes(&value)
        {
            self.notify(record);
        }
        let result = tokio::time::timeout(timeout, async {
            loop {
                if let Some(record) = receiver.borrow_and_update().clone()
                    && record.is_final()
                {
                    return;
                }
                if receiver.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let latest = receiver.borrow().clone();
        drop(receiver);
        let _ = result;
        // The last waiter for a key removes its slot.
        let mut waiters = self.waiters.lock().expect("waiters");
        if waiters
            .get(render_id)
            .is_some_and(|s| s.receiver_count() == 0)
        {
            waiters.remove(render_id);
        }
        latest
    }

    /// How many renders are being waited for.
    pub fn waiting(&self) -> usize {
        self.waiters.lock().expect("waiters").len()
    }
}
