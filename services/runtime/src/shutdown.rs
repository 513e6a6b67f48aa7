//! Stopping on Ctrl-C or SIGTERM within a bounded time, whatever the dependencies' state.
//!
//! A service is asked to stop (Kubernetes sends SIGTERM, then SIGKILL after the grace
//! period). Work under way may finish, but nothing may hold the process: a request waiting on
//! NATS that is gone, a reconciliation waiting on the API server, a connection loop. So every
//! binary runs its whole body under [`Shutdown::run`]: once a stop is asked for, the body gets
//! [`GRACE`] to finish on its own, then the process stops anyway.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// How long a service may take to finish its work after being asked to stop: well inside
/// Kubernetes' default 30 s termination grace period.
pub const GRACE: Duration = Duration::from_secs(5);

/// The process's stop signal, listened to from the moment it is installed.
#[derive(Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
    grace: Duration,
}

impl Shutdown {
    /// Listens for Ctrl-C and SIGTERM from now on (install it first thing in `main`: until
    /// a handler exists, SIGTERM kills the process without any clean-up).
    pub fn install() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal().await;
            tracing::info!("asked to stop");
            let _ = tx.send(true);
        });
        Self {
            requested: rx,
            grace: GRACE,
        }
    }

    /// A stop that the caller triggers (tests, embedding).
    pub fn manual(grace: Duration) -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (
            tx,
            Self {
                requested: rx,
                grace,
            },
        )
    }

    /// Resolves once a stop has been asked for.
    pub async fn requested(&self) {
        let mut rx = self.requested.clone();
        // An error means the sender is gone without a stop: never resolve.
        if rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// `work`'s output, or `None` as soon as a stop is asked for: for waits that hold no work
    /// worth finishing (connecting, retrying a dependency that is down).
    pub async fn unless_requested<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            output = work => Some(output),
            () = self.requested() => None,
        }
    }

    /// Runs a service's body. It ends when the body ends, or at most the grace period after a
    /// stop is asked for (`None`: the body did not finish in time and is dropped).
    pub async fn run<F: Future>(&self, body: F) -> Option<F::Output> {
        let deadline = async {
            self.requested().await;
            tokio::time::sleep(self.grace).await;
        };
        tokio::select! {
            output = body => Some(output),
            () = deadline => {
                tracing::warn!(grace_s = self.grace.as_secs_f64(), "work still under way at the end of the grace period; stopping anyway");
                None
            }
        }
    }
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_hangs_is_dropped_after_the_grace_period() {
        let (stop, shutdown) = Shutdown::manual(Duration::from_secs(5));
        let body = std::future::pending::<()>();
        let run = tokio::spawn(async move { shutdown.run(body).await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            !run.is_finished(),
            "nothing stops the body before a stop is asked for"
        );
        stop.send(true).unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(run.await.unwrap(), None);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_finishes_in_time_keeps_its_output() {
        let (stop, shutdown) = Shutdown::manual(Duration::from_secs(5));
        let waiter = shutdown.clone();
        let body = async move {
            waiter.requested().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            7
        };
        stop.send(true).unwrap();
        assert_eq!(shutdown.run(body).await, Some(7));
    }
}
