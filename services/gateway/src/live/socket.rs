//! One live stream: `start` read and checked, an align worker found, the client's audio
//! decoded and passed on, the worker's answers forwarded, the close.

use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use futures::StreamExt;
use futures::stream::SplitStream;
use tokio::sync::mpsc;

use avatar_audio::LiveAudio;
use avatar_domain::{LiveMessage, VisemeSet};
use avatar_runtime::live::{
    LIVE_SAMPLE_RATE, LiveInput, OPEN_SUBJECT, OpenReply, OpenRequest, input_subject,
    output_subject,
};

use super::protocol::{
    Client, MAX_LIVE_AUDIO_MS, MAX_LIVE_MESSAGE_BYTES, MAX_TRANSCRIPT_CHARS, OUTBOX, Start, limits,
    parse_client,
};
use crate::state::App;
use crate::ws::{
    IDLE, Incoming, LOST, REFUSED, TOO_BIG, TRY_AGAIN, incoming, next_message, spawn_writer,
};

/// How long an align worker has to answer a request to take a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// Workers asked before the stream is refused: the queue group picks one at random, and one
/// with every place taken says no.
const OPEN_ATTEMPTS: usize = 3;
/// With no audio for this long, an empty audio message tells the worker the stream lives.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A worker silent this long after audio (or `end`) was sent to it is lost.
const LOST_AFTER: Duration = Duration::from_secs(10);

/// A stream that ends with an error: the close code and the message.
type Fatal = (u16, LiveMessage);

/// A live stream from `start` to `done` (or to the client's leaving).
pub(super) async fn run_live(app: App, socket: WebSocket) {
    let (sink, mut source) = socket.split();
    let writer = spawn_writer(sink, OUTBOX, |m| matches!(m, LiveMessage::Done { .. }));
    if let Some(fatal) = serve(&app, &mut source, &writer.out).await {
        let _ = writer.close.send(fatal);
    }
    drop(writer.out);
    let _ = writer.task.await;
}

async fn serve(
    app: &App,
    source: &mut SplitStream<WebSocket>,
    out: &mpsc::Sender<LiveMessage>,
) -> Option<Fatal> {
    let (start, audio) = match read_start(app, source, out).await {
        Ok(started) => started,
        Err(fatal) => return fatal,
    };
    let mut worker = match Worker::open(&app.pipeline.client, start.viseme_set).await {
        Ok(w) => {
            app.metrics.live_streams.with_label_values(&["taken"]).inc();
            w
        }
        Err(reason) => {
            app.metrics
                .live_streams
                .with_label_values(&["refused"])
                .inc();
            return Some((TRY_AGAIN, LiveMessage::error("unavailable", reason, None)));
        }
    };
    let ready = LiveMessage::Ready {
        lag_ms: worker.lag_ms,
        format: start.format,
        sample_rate: start.sample_rate,
        channels: start.channels,
        viseme_set: start.viseme_set,
        limits: limits(app.config.stream_idle_timeout.as_millis() as u64),
    };
    if out.send(ready).await.is_err() {
        worker.send(&LiveInput::End).await;
        return None;
    }
    let transcript_chars = match start.transcript {
        Some(text) => {
            let chars = text.chars().count();
            worker.send(&LiveInput::Text(text)).await;
            chars
        }
        None => 0,
    };
    let fatal = relay(app, source, out, &mut worker, audio, transcript_chars).await;
    if !worker.done {
        worker.send(&LiveInput::End).await;
    }
    fatal
}

/// The client's `start` (a bad one is answered and another awaited), and its decoder.
async fn read_start(
    app: &App,
    source: &mut SplitStream<WebSocket>,
    out: &mpsc::Sender<LiveMessage>,
) -> Result<(Start, LiveAudio), Option<Fatal>> {
    let first_must_be_start = || {
        Some((
            REFUSED,
            LiveMessage::error(
                "invalid_message",
                "the first message must be `start` (JSON text)",
                Some("type"),
            ),
        ))
    };
    loop {
        let text = match next_message(source, app.config.stream_idle_timeout).await {
            Incoming::Quiet => return Err(Some(idle(app))),
            Incoming::TooBig => return Err(Some(too_big())),
            Incoming::Gone => return Err(None),
            Incoming::Binary(_) => return Err(first_must_be_start()),
            Incoming::Text(text) => text,
        };
        let start = match parse_client(text.as_str()) {
            Ok(Client::Start(start)) => start,
            Ok(_) => return Err(first_must_be_start()),
            Err(error) => {
                let _ = out.send(error).await;
                continue;
            }
        };
        match LiveAudio::new(
            start.format,
            start.sample_rate,
            start.channels,
            LIVE_SAMPLE_RATE,
        ) {
            Ok(audio) => return Ok((start, audio)),
            // Not started: the client may send a better `start`.
            Err(e) => {
                let message = LiveMessage::error("invalid_message", e.to_string(), Some(e.field));
                let _ = out.send(message).await;
            }
        }
    }
}

/// The client's audio and transcript to the worker, the worker's answers to the client, until
/// `done`, the client's leaving, or a fatal error.
async fn relay(
    app: &App,
    source: &mut SplitStream<WebSocket>,
    out: &mpsc::Sender<LiveMessage>,
    worker: &mut Worker,
    audio: LiveAudio,
    mut transcript_chars: usize,
) -> Option<Fatal> {
    let max_samples = MAX_LIVE_AUDIO_MS * u64::from(LIVE_SAMPLE_RATE) / 1000;
    let mut audio = Some(audio);
    let mut samples = Vec::new();
    let mut sent_samples = 0u64;
    let mut last_heard = Instant::now();
    let mut last_sent = Instant::now();
    // Since when the worker owes an answer (audio or `end` sent, nothing back yet).
    let mut owed_since: Option<Instant> = None;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            answer = worker.answers.next() => {
                let Some(answer) = answer else {
                    return Some(lost("the align worker's answers stopped"));
                };
                owed_since = None;
                let message = match serde_json::from_slice::<LiveMessage>(&answer.payload) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "an align worker's live answer is not a LiveMessage");
                        continue;
                    }
                };
                let done = matches!(message, LiveMessage::Done { .. });
                if out.send(message).await.is_err() {
                    return None;
                }
                if done {
                    worker.done = true;
                    return None;
                }
            }
            next = source.next(), if audio.is_some() => {
                last_heard = Instant::now();
                let text = match incoming(next) {
                    // A ping or pong; `incoming` never says `Quiet` (no wait here).
                    None | Some(Incoming::Quiet) => continue,
                    Some(Incoming::Gone) => return None,
                    Some(Incoming::TooBig) => return Some(too_big()),
                    Some(Incoming::Binary(bytes)) => {
                        let decoder = audio.as_mut().expect("reading while audio comes");
                        samples.clear();
                        if let Err(e) = decoder.push(&bytes, |s| samples.extend_from_slice(s)) {
                            let message = LiveMessage::error(
                                "invalid_audio",
                                format!("audio: {e}; the message was skipped"),
                                Some("audio"),
                            );
                            if out.send(message).await.is_err() {
                                return None;
                            }
                            continue;
                        }
                        sent_samples += samples.len() as u64;
                        if sent_samples > max_samples {
                            return Some((
                                REFUSED,
                                LiveMessage::error(
                                    "limit",
                                    format!(
                                        "audio: a live stream is at most {} minutes",
                                        MAX_LIVE_AUDIO_MS / 60_000
                                    ),
                                    Some("audio"),
                                ),
                            ));
                        }
                        if !samples.is_empty() {
                            worker.send(&LiveInput::Audio(std::mem::take(&mut samples))).await;
                            owed_since.get_or_insert_with(Instant::now);
                            last_sent = Instant::now();
                        }
                        continue;
                    }
                    Some(Incoming::Text(text)) => text,
                };
                match parse_client(text.as_str()) {
                    Err(error) => {
                        if out.send(error).await.is_err() {
                            return None;
                        }
                    }
                    Ok(Client::Start(_)) => {
                        let message = LiveMessage::error(
                            "invalid_message",
                            "the stream has started already",
                            Some("type"),
                        );
                        if out.send(message).await.is_err() {
                            return None;
                        }
                    }
                    Ok(Client::Text(text)) => {
                        transcript_chars += text.chars().count();
                        if transcript_chars > MAX_TRANSCRIPT_CHARS {
                            return Some((
                                REFUSED,
                                LiveMessage::error(
                                    "limit",
                                    format!(
                                        "text: a stream's transcript is at most \
                                         {MAX_TRANSCRIPT_CHARS} characters"
                                    ),
                                    Some("text"),
                                ),
                            ));
                        }
                        worker.send(&LiveInput::Text(text)).await;
                    }
                    Ok(Client::End) => {
                        let decoder = audio.take().expect("reading while audio comes");
                        samples.clear();
                        let _ = decoder.finish(|s| samples.extend_from_slice(s));
                        if !samples.is_empty() {
                            worker.send(&LiveInput::Audio(std::mem::take(&mut samples))).await;
                        }
                        worker.send(&LiveInput::End).await;
                        owed_since.get_or_insert_with(Instant::now);
                    }
                }
            }
            _ = ticks.tick() => {
                if owed_since.is_some_and(|t| t.elapsed() > LOST_AFTER) {
                    return Some(lost("the align worker stopped answering"));
                }
                if audio.is_some() && last_heard.elapsed() > app.config.stream_idle_timeout {
                    return Some(idle(app));
                }
                if last_sent.elapsed() > HEARTBEAT {
                    worker.send(&LiveInput::Audio(Vec::new())).await;
                    last_sent = Instant::now();
                }
            }
        }
    }
}

fn idle(app: &App) -> Fatal {
    (
        IDLE,
        LiveMessage::error(
            "idle",
            format!(
                "no message for {} s; the stream is closed",
                app.config.stream_idle_timeout.as_secs()
            ),
            None,
        ),
    )
}

fn too_big() -> Fatal {
    (
        TOO_BIG,
        LiveMessage::error(
            "limit",
            format!(
                "a message is at most {MAX_LIVE_MESSAGE_BYTES} bytes; send audio in smaller pieces"
            ),
            Some("audio"),
        ),
    )
}

fn lost(why: &str) -> Fatal {
    (LOST, LiveMessage::error("unavailable", why, None))
}

/// The align worker that took the stream.
struct Worker {
    client: async_nats::Client,
    input: String,
    answers: async_nats::Subscriber,
    lag_ms: u64,
    /// Its `done` came: it needs no `end`.
    done: bool,
}

impl Worker {
    /// Asks the align workers to take a stream (a fresh session each time, so a late yes to
    /// an earlier ask never shares a subject), or says why none did.
    async fn open(client: &async_nats::Client, viseme_set: VisemeSet) -> Result<Self, String> {
        let mut why = String::from("no align worker answered");
        for _ in 0..OPEN_ATTEMPTS {
            let inbox = client.new_inbox();
            let session = inbox.rsplit('.').next().unwrap_or(&inbox).to_owned();
            // Listening before asking: the worker may answer as soon as it has said yes.
            let answers = client
                .subscribe(output_subject(&session))
                .await
                .map_err(|e| format!("NATS: {e}"))?;
            let request = OpenRequest {
                session: session.clone(),
                viseme_set,
            };
            let json = serde_json::to_vec(&request).expect("a request serialises");
            let asked =
                tokio::time::timeout(OPEN_TIMEOUT, client.request(OPEN_SUBJECT, json.into())).await;
            let reply = match asked {
                Err(_) => {
                    why = format!(
                        "no align worker answered within {} s",
                        OPEN_TIMEOUT.as_secs()
                    );
                    continue;
                }
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                    return Err(
                        "no align worker has room for a live stream (or none is running)".into(),
                    );
                }
                Ok(Err(e)) => {
                    why = format!("NATS: {e}");
                    continue;
                }
                Ok(Ok(reply)) => reply,
            };
            match serde_json::from_slice::<OpenReply>(&reply.payload) {
                Ok(OpenReply {
                    taken: true,
                    lag_ms,
                    ..
                }) => {
                    return Ok(Self {
                        client: client.clone(),
                        input: input_subject(&session),
                        answers,
                        lag_ms,
                        done: false,
                    });
                }
                Ok(OpenReply { reason, .. }) => {
                    why = format!(
                        "every align worker asked is busy: {}",
                        reason.unwrap_or_default()
                    );
                }
                Err(e) => why = format!("an align worker's answer: {e}"),
            }
        }
        Err(why)
    }

    /// Sends input on (a NATS core publish: it fails only when the connection is closed,
    /// which the silence of the answers then reports).
    async fn send(&self, input: &LiveInput) {
        let _ = self
            .client
            .publish(self.input.clone(), input.encode().into())
            .await;
    }
}
