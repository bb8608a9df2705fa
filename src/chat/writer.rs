//! The chat shards: each owns the rooms that hash to it, so a room has one writer and one commit
//! order. A shard takes whatever SENDs are queued (up to `max_batch`), commits them in one store
//! transaction with their mention notifications, publishes the committed batch on the bus, and
//! only then answers the senders — nothing is broadcast or receipted before it is durable. The
//! bus delivers each room in the store's order (its sequencer), whichever shard or node commits.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::{ChatAck, ChatError, ChatJob};
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

    /// Queues a SEND on the shard that owns its room; a full queue is `Unavailable` at once.
    pub fn submit(&self, pool: &StorePool, job: ChatJob) -> Result<(), ChatError> {
        if !pool.is_up() {
            return Err(ChatError::Unavailable);
        }
        let mut hasher = DefaultHasher::new();
        job.message.room_id.hash(&mut hasher);
        let shard = (hasher.finish() % self.shards.len() as u64) as usize;
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let queued = pool.offer(&self.shards[shard], job);
        if queued.is_err() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ChatError::Unavailable);
        }
        Ok(())
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
    while let Some(first) = worker.next(rx) {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        messages.clear();
        messages.extend(
            batch
                .iter_mut()
                .map(|j| std::mem::replace(&mut j.message, empty_message())),
        );
        match commit(&mut worker, &messages) {
            Ok(committed) => {
                let acks = acks_for(batch.drain(..), &Ok(()));
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

/// Commits one batch; the events to publish once it is durable.
fn commit(worker: &mut Worker, messages: &[NewChatMessage]) -> Result<Committed, ChatError> {
    let committed = worker.with(|db| db.commit_chat(messages));
    let metrics = worker.metrics();
    match committed {
        Ok(committed) => {
            metrics
                .chat_messages_committed
                .fetch_add(committed.messages.len() as u64, Ordering::Relaxed);
            metrics.chat_batches_committed.fetch_add(1, Ordering::Relaxed);
            metrics
                .notifications_created
                .fetch_add(committed.notifications.len() as u64, Ordering::Relaxed);
            Ok(Committed::of(&committed))
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
/// MESSAGE before its RECEIPT.
fn acks_for(jobs: impl Iterator<Item = ChatJob>, outcome: &Result<(), ChatError>) -> Vec<(usize, Vec<ChatAck>)> {
    let mut acks: HashMap<usize, Vec<ChatAck>> = HashMap::new();
    for job in jobs {
        // Without a receipt a committed SEND needs no answer; a failure is always reported.
        if job.receipt.is_none() && outcome.is_ok() {
            continue;
        }
        acks.entry(job.origin.reactor).or_default().push(ChatAck {
            token: job.origin.token,
            receipt: job.receipt,
            outcome: outcome.clone(),
        });
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
