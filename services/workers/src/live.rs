//! Live lip-sync in the align worker: streams of audio taken over NATS core (see
//! [`avatar_runtime::live`]), each decoded by a [`avatar_align::LiveSession`] on a thread of
//! its own and answered at its fixed lag, and each utterance aligned again after its pause
//! on a second thread (so a correction never holds up the live cues).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use avatar_align::{Aligner, LiveEvent, RunningTranscript, Utterance};
use avatar_domain::{LiveMessage, MouthCue, VisemeSet, marks::marks};
use avatar_runtime::live::{
    LIVE_SAMPLE_RATE, LiveInput, OPEN_QUEUE, OPEN_SUBJECT, OpenReply, OpenRequest, input_subject,
    output_subject,
};
use avatar_runtime::shutdown::Shutdown;
use futures::StreamExt;
use tokio::sync::mpsc;

/// Live streams one worker decodes at once when `LIVE_SESSIONS` is not set (each costs about
/// 0.05 of a core).
pub const DEFAULT_LIVE_SESSIONS: usize = 4;
/// A stream with no input for this long is ended (its gateway is gone).
const IDLE: Duration = Duration::from_secs(30);

const fn ms(samples: u64) -> u64 {
    samples * 1000 / LIVE_SAMPLE_RATE as u64
}

/// Takes live streams until shut down. A worker with every place taken leaves the queue
/// group until one frees, so the gateways' asks go to workers with room (and, when none has
/// any, are refused at once: no responders).
pub async fn serve(
    client: async_nats::Client,
    aligner: Arc<Aligner>,
    max_sessions: usize,
    shutdown: &Shutdown,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(tokio::sync::Notify::new());
    let mut opens: Option<async_nats::Subscriber> = None;
    loop {
        if open.load(Ordering::SeqCst) >= max_sessions {
            if let Some(mut full) = opens.take() {
                let _ = full.unsubscribe().await;
                tracing::info!(
                    max_sessions,
                    "every live place taken: out of the queue group"
                );
            }
            if shutdown.unless_requested(freed.notified()).await.is_none() {
                return;
            }
            continue;
        }
        let subscription = match &mut opens {
            Some(s) => s,
            None => match client
                .queue_subscribe(OPEN_SUBJECT, OPEN_QUEUE.into())
                .await
            {
                Ok(s) => opens.insert(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot take live streams");
                    return;
                }
            },
        };
        let Some(Some(message)) = shutdown.unless_requested(subscription.next()).await else {
            return;
        };
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let taken = take(
            &client,
            &message.payload,
            open.load(Ordering::SeqCst),
            max_sessions,
        )
        .await;
        let reply = OpenReply {
            taken: taken.is_ok(),
            reason: taken.as_ref().err().cloned(),
            lag_ms: avatar_align::LIVE_LAG_MS,
        };
        let json = serde_json::to_vec(&reply).expect("a reply serialises");
        let Ok((request, input)) = taken else {
            let _ = client.publish(reply_to, json.into()).await;
            continue;
        };
        open.fetch_add(1, Ordering::SeqCst);
        let _ = client.publish(reply_to, json.into()).await;
        tracing::info!(session = %request.session, "live stream taken");
        let (client, aligner, open, freed) =
            (client.clone(), aligner.clone(), open.clone(), freed.clone());
        tokio::spawn(async move {
            run(client, aligner, request, input).await;
            open.fetch_sub(1, Ordering::SeqCst);
            freed.notify_one();
        });
    }
}

/// A stream taken (listening on its input subject already), or why not.
async fn take(
    client: &async_nats::Client,
    payload: &[u8],
    open: usize,
    max_sessions: usize,
) -> Result<(OpenRequest, async_nats::Subscriber), String> {
    let request: OpenRequest = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    if open >= max_sessions {
        return Err(format!(
            "{max_sessions} live streams are open on this worker"
        ));
    }
    let input = client
        .subscribe(input_subject(&request.session))
        .await
        .map_err(|e| e.to_string())?;
    Ok((request, input))
}

/// One stream: its input forwarded to the session thread, its answers published in order.
async fn run(
    client: async_nats::Client,
    aligner: Arc<Aligner>,
    request: OpenRequest,
    mut input: async_nats::Subscriber,
) {
    let (to_session, inputs) = std_mpsc::channel::<LiveInput>();
    let (answers, mut outbox) = mpsc::unbounded_channel::<LiveMessage>();
    let subject = output_subject(&request.session);
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            while let Some(message) = outbox.recv().await {
                let json = serde_json::to_vec(&message).expect("a message serialises");
                if client.publish(subject.clone(), json.into()).await.is_err() {
                    break;
                }
            }
            let _ = client.flush().await;
        })
    };
    let set = request.viseme_set;
    let decoding = tokio::task::spawn_blocking(move || decode(&aligner, set, inputs, answers));
    loop {
        let next = tokio::time::timeout(IDLE, input.next()).await;
        let message = match next {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                let _ = to_session.send(LiveInput::End);
                break;
            }
        };
        match LiveInput::decode(&message.payload) {
            Some(LiveInput::End) => {
                let _ = to_session.send(LiveInput::End);
                break;
            }
            Some(input) => {
                if to_session.send(input).is_err() {
                    break;
                }
            }
            None => tracing::warn!(session = %request.session, "a malformed live input"),
        }
    }
    let _ = input.unsubscribe().await;
    let _ = decoding.await;
    let _ = publisher.await;
    tracing::info!(session = %request.session, "live stream ended");
}

/// What the session thread hands the corrections thread, in stream order.
enum Work {
    Text(String),
    /// No more transcript will come.
    Complete,
    Utterance(Utterance),
    End {
        duration_ms: u64,
    },
}

/// The session thread: audio in, `cues` out; utterances to the corrections thread.
fn decode(
    aligner: &Arc<Aligner>,
    set: VisemeSet,
    inputs: std_mpsc::Receiver<LiveInput>,
    answers: mpsc::UnboundedSender<LiveMessage>,
) {
    let mut session = match aligner.live() {
        Ok(s) => s,
        Err(e) => {
            let _ = answers.send(LiveMessage::error("unavailable", e.to_string(), None));
            return;
        }
    };
    let (work, works) = std_mpsc::channel::<Work>();
    let corrections = {
        let (aligner, answers) = (aligner.clone(), answers.clone());
        std::thread::Builder::new()
            .name("live-corrections".into())
            .spawn(move || correct(&aligner, set, works, &answers))
            .expect("a thread")
    };
    let rest = ::lipsync::visemes::rest(set);
    let mut events = Vec::new();
    loop {
        let input = inputs.recv().unwrap_or(LiveInput::End);
        let end = input == LiveInput::End;
        match input {
            LiveInput::Audio(samples) => session.push(&samples, &mut events),
            LiveInput::Text(text) => {
                let _ = work.send(Work::Text(text));
            }
            LiveInput::End => {
                let _ = work.send(Work::Complete);
                session.finish(&mut events);
            }
        }
        let heard_ms = ms(session.heard());
        for event in events.drain(..) {
            let message = match event {
                LiveEvent::Quiet { from, to } => LiveMessage::Cues {
                    from_ms: ms(from),
                    to_ms: ms(to),
                    heard_ms,
                    mouth_cues: vec![MouthCue {
                        t_ms: ms(from),
                        viseme: rest.into(),
                        weight: 1.0,
                    }],
                },
                LiveEvent::Speech {
                    offset,
                    timeline,
                    from,
                    to,
                } => LiveMessage::Cues {
                    from_ms: ms(from),
                    to_ms: ms(to),
                    heard_ms,
                    mouth_cues: ::lipsync::window_cues(
                        &timeline,
                        set,
                        ms(offset),
                        ms(from),
                        ms(to),
                    ),
                },
                LiveEvent::Ended(utterance) => {
                    let _ = work.send(Work::Utterance(utterance));
                    continue;
                }
            };
            // Windows that round to nothing in whole ms are left out.
            if let LiveMessage::Cues { from_ms, to_ms, .. } = &message
                && from_ms == to_ms
            {
                continue;
            }
            let _ = answers.send(message);
        }
        if end {
            let _ = work.send(Work::End {
                duration_ms: heard_ms,
            });
            break;
        }
    }
    drop(work);
    drop(session);
    let _ = corrections.join();
}

/// The corrections thread: each utterance aligned with the running transcript, then `done`.
fn correct(
    aligner: &Aligner,
    set: VisemeSet,
    works: std_mpsc::Receiver<Work>,
    answers: &mpsc::UnboundedSender<LiveMessage>,
) {
    let mut transcript = RunningTranscript::default();
    let mut utterances = 0;
    for work in works {
        match work {
            Work::Text(text) => transcript.push(&text),
            Work::Complete => transcript.complete(),
            Work::Utterance(u) => {
                utterances += 1;
                let from_ms = ms(u.offset);
                let to_ms = ms(u.offset + u.audio.samples.len() as u64);
                let message = match aligner.align_utterance(&u, &mut transcript) {
                    Ok(a) => {
                        let (mut words, _) = marks(&a.timeline, &a.text);
                        for w in &mut words {
                            w.t_ms += from_ms;
                            w.end_ms += from_ms;
                        }
                        LiveMessage::Correction {
                            from_ms,
                            to_ms,
                            aligned: a.forced,
                            mouth_cues: ::lipsync::window_cues(
                                &a.timeline,
                                set,
                                from_ms,
                                from_ms,
                                to_ms,
                            ),
                            text: a.text,
                            words,
                        }
                    }
                    Err(e) => LiveMessage::error(
                        "alignment",
                        format!("the utterance at {from_ms}-{to_ms} ms: {e}"),
                        None,
                    ),
                };
                let _ = answers.send(message);
            }
            Work::End { duration_ms } => {
                let _ = answers.send(LiveMessage::Done {
                    duration_ms,
                    utterances,
                });
                return;
            }
        }
    }
}
