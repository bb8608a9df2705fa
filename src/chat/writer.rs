//! The chat shards: each owns the rooms that hash to it, so a room has one writer and one commit
//! order. A shard takes whatever SENDs are queued (up to `max_batch`), commits them in one store
//! transaction with their mention notifications, publishes the committed batch on the bus, and
//! only then answers the senders — nothing is broadcast or receipted before it is durable. The
//! bus delivers each room in the store's order (its sequencer: each message carries its room's
//! previous id), whichever shard or node committed it.
//!
//! A job is committed whole: a transaction's group is never split across batches (one larger
//! than `max_batch` is committed alone), so it is atomic and keeps the order it was sent in. A
//! group goes to the shard of its *first* room; when its rooms hash to several shards, the rooms'
//! row locks in the store order the commits and the sequencer orders the deliveries, so no
//! cross-shard protocol is needed here.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::{ChatAck, ChatAnswer, ChatError, ChatJob, ChatWork};
use crate::bus::{Bus, Committed, ReactorMsg};
use crate::store::model::NewChatMessage;
use crate::store::pool::{StorePool, Worker};
use crate::store::StoreError;

/// The queues of the chat shards and the count of SENDs not answered yet.
pub struct ChatWriter {
    shards: Vec<Sender<ChatJob>>,
    /// SENDs queued or being committed whose senders have not been answered yet.
    in_flight: Arc<AtomicUsize>,
}

impl ChatWriter {
    /// Starts `shards` shard threads on the store pool, each with a queue of `queue_capacity`.
    pub fn start(
        pool: &StorePool,
        bus: &Arc<Bus>,
        shards: usize,
        max_batch: usize,
        queue_capacity: usize,
    ) -> ChatWriter {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut queues = Vec::with_capacity(shards);
        for i in 0..shards.max(1) {
            let (tx, rx) = crossbeam_channel::bounded::<ChatJob>(queue_capacity.max(1));
            queues.push(tx);
            let (bus, in_flight, max_batch) = (Arc::clone(bus), Arc::clone(&in_flight), max_batch.max(1));
            pool.spawn(format!("herald-chat-{i}"), move |worker| {
                shard_loop(&rx, worker, &bus, max_batch, &in_flight)
            });
        }
        ChatWriter {
            shards: queues,
            in_flight,
        }
    }

    /// How many shards run.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Queues a job on the shard that owns its (first) room; a full queue is `Unavailable` at once.
    pub fn submit(&self, pool: &StorePool, job: ChatJob) -> Result<(), ChatError> {
        if !pool.is_up() {
            return Err(ChatError::Unavailable);
        }
        let shard = self.shard_of(job.first_room().unwrap_or_default());
        let count = job.len();
        self.in_flight.fetch_add(count, Ordering::AcqRel);
        let queued = pool.offer(&self.shards[shard], job);
        if queued.is_err() {
            self.in_flight.fetch_sub(count, Ordering::AcqRel);
            return Err(ChatError::Unavailable);
        }
        Ok(())
    }

    /// The shard that owns `room`.
    pub fn shard_of(&self, room: &str) -> usize {
        let mut hasher = DefaultHasher::new();
        room.hash(&mut hasher);
        (hasher.finish() % self.shards.len() as u64) as usize
    }

    /// SENDs accepted whose senders have not been answered yet (drained before shutdown).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// SENDs waiting in the shard queues.
    pub fn queue_depth(&self) -> usize {
        self.shards.iter().map(Sender::len).sum()
    }
}

fn shard_loop(rx: &Receiver<ChatJob>, mut worker: Worker, bus: &Bus, max_batch: usize, in_flight: &AtomicUsize) {
    let mut batch: Vec<ChatJob> = Vec::with_capacity(max_batch);
    let mut messages: Vec<NewChatMessage> = Vec::with_capacity(max_batch);
    // Each job's message count: a job is stored whole or refused whole.
    let mut units: Vec<usize> = Vec::with_capacity(max_batch);
    // A job that did not fit in the last batch opens the next one.
    let mut carried: Option<ChatJob> = None;
    while let Some(first) = carried.take().or_else(|| worker.next(rx)) {
        carried = fill_batch(first, rx, max_batch, &mut batch);
        messages.clear();
        units.clear();
        for job in &mut batch {
            units.push(job.len());
            take_messages(job, &mut messages);
        }
        match commit(&mut worker, &messages, &units) {
            Ok((committed, refused)) => {
                let acks = acks_for(batch.drain(..), &Ok(refused));
                bus.publish_then_ack(committed, acks);
            }
            Err(e) => {
                for (reactor, acks) in acks_for(batch.drain(..), &Err(e)) {
                    bus.send(reactor, ReactorMsg::ChatAcks(acks));
                }
            }
        }
        in_flight.fetch_sub(messages.len(), Ordering::AcqRel);
    }
}

/// Starts a batch with `first` and adds queued jobs while their messages fit in `max_batch`;
/// returns the job that did not fit, if any. A job is never split, and one larger than
/// `max_batch` makes a batch of its own.
fn fill_batch(first: ChatJob, rx: &Receiver<ChatJob>, max_batch: usize, batch: &mut Vec<ChatJob>) -> Option<ChatJob> {
    let mut size = first.len();
    batch.push(first);
    while size < max_batch {
        match rx.try_recv() {
            Ok(job) if size + job.len() <= max_batch => {
                size += job.len();
                batch.push(job);
            }
            Ok(job) => return Some(job),
            Err(_) => break,
        }
    }
    None
}

/// Moves a job's messages into the batch's, leaving its receipts for the answer.
fn take_messages(job: &mut ChatJob, into: &mut Vec<NewChatMessage>) {
    match &mut job.work {
        ChatWork::Send { message, .. } => into.push(std::mem::replace(message, empty_message())),
        ChatWork::Group { messages, .. } => into.append(messages),
    }
}

/// Commits one batch of jobs (`units`: each job's message count); the events to publish once it
/// is durable, and the positions of the messages refused because their senders may not enter
/// their rooms (whole jobs).
fn commit(
    worker: &mut Worker,
    messages: &[NewChatMessage],
    units: &[usize],
) -> Result<(Committed, Vec<usize>), ChatError> {
    let committed = worker.with(|db| db.commit_chat_units(messages, units));
    let metrics = worker.metrics();
    match committed {
        Ok(committed) => {
            metrics
                .chat_messages_committed
                .fetch_add(committed.messages.len() as u64, Ordering::Relaxed);
            metrics
                .chat_messages_forbidden
                .fetch_add(committed.refused.len() as u64, Ordering::Relaxed);
            if !committed.messages.is_empty() {
                metrics.chat_batches_committed.fetch_add(1, Ordering::Relaxed);
            }
            metrics
                .notifications_created
                .fetch_add(committed.notifications.len() as u64, Ordering::Relaxed);
            Ok((Committed::of(&committed), committed.refused))
        }
        Err(e) => {
            metrics
                .chat_messages_rejected
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            Err(match e {
                StoreError::Unavailable(_) => ChatError::Unavailable,
                StoreError::Conflict | StoreError::Other(_) => ChatError::Internal,
            })
        }
    }
}

/// Each sender's answer, grouped by origin reactor. The bus posts them after the publish (on a
/// commit: once the batch's messages are delivered here), so a subscribed sender sees its
/// MESSAGE before its RECEIPT. Every SEND is answered, so that its session knows what is still
/// in flight; committed SENDs without a receipt are only counted, consecutive ones of a session
/// together. `outcome` is the batch's: the positions of the messages it refused (a refused job —
/// a SEND, or a whole group — is answered `FORBIDDEN`), or why nothing was stored.
fn acks_for(
    jobs: impl Iterator<Item = ChatJob>,
    outcome: &Result<Vec<usize>, ChatError>,
) -> Vec<(usize, Vec<ChatAck>)> {
    let mut acks: HashMap<usize, Vec<ChatAck>> = HashMap::new();
    let mut position = 0;
    for job in jobs {
        let acks = acks.entry(job.origin.reactor).or_default();
        let token = job.origin.token;
        let size = job.messages_sent();
        let this = match outcome {
            Err(e) => Err(e.clone()),
            Ok(refused) if refused.binary_search(&position).is_ok() => Err(ChatError::Forbidden),
            Ok(_) => Ok(()),
        };
        position += size;
        let answer = match job.work {
            ChatWork::Send { receipt: None, .. } if this.is_ok() => {
                if let Some(ChatAck {
                    token: last,
                    answer: ChatAnswer::Committed { count },
                }) = acks.last_mut()
                {
                    if *last == token {
                        *count += 1;
                        continue;
                    }
                }
                ChatAnswer::Committed { count: 1 }
            }
            ChatWork::Send { receipt, .. } => ChatAnswer::Send { receipt, outcome: this },
            ChatWork::Group { receipts, receipt, .. } => ChatAnswer::Group {
                receipts,
                receipt,
                outcome: this,
            },
        };
        acks.push(ChatAck { token, answer });
    }
    acks.into_iter().collect()
}

fn empty_message() -> NewChatMessage {
    NewChatMessage {
        room_id: String::new(),
        sender: String::new(),
        message: String::new(),
        sent_at_ms: 0,
        mentions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{ConnRef, Outlet};

    fn message(room: &str) -> NewChatMessage {
        NewChatMessage {
            room_id: room.into(),
            ..empty_message()
        }
    }

    fn job(reactor: usize, token: usize, size: usize, receipt: Option<&str>) -> ChatJob {
        let origin = ConnRef { reactor, token };
        let work = if size == 1 {
            ChatWork::Send {
                message: message("r"),
                receipt: receipt.map(Box::from),
            }
        } else {
            ChatWork::Group {
                messages: (0..size).map(|_| message("r")).collect(),
                receipts: vec![None; size],
                receipt: receipt.map(Box::from),
            }
        };
        ChatJob { origin, work }
    }

    fn sizes(batch: &[ChatJob]) -> Vec<usize> {
        batch.iter().map(ChatJob::len).collect()
    }

    #[test]
    fn a_group_is_never_split_and_a_large_one_is_committed_alone() {
        let (tx, rx) = crossbeam_channel::unbounded();
        for size in [3, 1, 600, 1, 4, 2] {
            tx.send(job(0, 1, size, None)).unwrap();
        }
        let mut batch = Vec::new();
        let mut batches = Vec::new();
        let mut carried = None;
        while let Some(first) = carried.take().or_else(|| rx.try_recv().ok()) {
            carried = fill_batch(first, &rx, 5, &mut batch);
            batches.push(sizes(&batch));
            batch.clear();
        }
        assert_eq!(batches, [vec![3, 1], vec![600], vec![1, 4], vec![2]]);
        let mut messages = Vec::new();
        let mut group = job(0, 1, 3, None);
        take_messages(&mut group, &mut messages);
        assert_eq!((messages.len(), group.len()), (3, 0), "moved out, receipts kept");
    }

    #[test]
    fn every_send_is_answered_and_plain_commits_are_only_counted() {
        let polls: Vec<mio::Poll> = (0..2).map(|_| mio::Poll::new().expect("poll")).collect();
        let wakers = polls
            .iter()
            .map(|p| mio::Waker::new(p.registry(), mio::Token(0)).expect("waker"))
            .collect();
        let (handles, inboxes) = crate::bus::inboxes(wakers);
        let bus = Bus::new(handles, Outlet::Local);
        let jobs = || {
            vec![
                job(0, 7, 1, None),
                job(0, 7, 1, None),
                job(1, 9, 1, None),
                job(0, 7, 1, Some("r")),
                job(0, 7, 1, None),
                job(0, 8, 3, Some("c")),
            ]
        };
        let answers = |rx: &Receiver<ReactorMsg>| -> Vec<String> {
            rx.try_iter()
                .flat_map(|m| match m {
                    ReactorMsg::ChatAcks(acks) => acks,
                    _ => Vec::new(),
                })
                .map(|a| match a.answer {
                    ChatAnswer::Committed { count } => format!("{} committed {count}", a.token),
                    ChatAnswer::Send { receipt, outcome } => {
                        format!("{} send {receipt:?} {}", a.token, outcome.is_ok())
                    }
                    ChatAnswer::Group {
                        receipts,
                        receipt,
                        outcome,
                    } => format!("{} group {} {receipt:?} {}", a.token, receipts.len(), outcome.is_ok()),
                })
                .collect()
        };
        let answer = |jobs: Vec<ChatJob>, outcome: &Result<Vec<usize>, ChatError>| {
            for (reactor, acks) in acks_for(jobs.into_iter(), outcome) {
                bus.send(reactor, ReactorMsg::ChatAcks(acks));
            }
        };
        answer(jobs(), &Ok(Vec::new()));
        assert_eq!(
            answers(&inboxes[0]),
            [
                "7 committed 2",
                "7 send Some(\"r\") true",
                "7 committed 1",
                "8 group 3 Some(\"c\") true"
            ]
        );
        assert_eq!(answers(&inboxes[1]), ["9 committed 1"]);
        answer(jobs(), &Err(ChatError::Unavailable));
        assert_eq!(
            answers(&inboxes[0]),
            [
                "7 send None false",
                "7 send None false",
                "7 send Some(\"r\") false",
                "7 send None false",
                "8 group 3 Some(\"c\") false"
            ]
        );
        assert_eq!(answers(&inboxes[1]), ["9 send None false"]);
        // Positions 1 (a plain SEND) and 5..8 (the group, whole) were refused: FORBIDDEN each.
        answer(jobs(), &Ok(vec![1, 5, 6, 7]));
        assert_eq!(
            answers(&inboxes[0]),
            [
                "7 committed 1",
                "7 send None false",
                "7 send Some(\"r\") true",
                "7 committed 1",
                "8 group 3 Some(\"c\") false"
            ]
        );
        assert_eq!(answers(&inboxes[1]), ["9 committed 1"]);
    }
}
