//! One configured neighbor: its connections, collision handling, retries
//! with backoff, and the state the speaker reports for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use crate::config::{NeighborConfig, RetryPolicy};
use crate::session::{Command, Connection, ConnectionId, Direction, Event, LocalParams, Socket};
use crate::status::{SessionState, Table};
use crate::wire::notification::cease;
use crate::wire::Notification;

/// How long a stopping neighbor waits for its connections to say goodbye
/// before dropping them.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub(crate) enum NeighborCommand {
    /// The router connected to our listening socket.
    Incoming(TcpStream),
    /// Speaker-wide settings that need no new session.
    Update { retry: RetryPolicy, listening: bool },
    /// Close every connection with this NOTIFICATION, drop the neighbor's
    /// routes and status, and end.
    Stop(Notification),
}

struct Slot {
    direction: Direction,
    state: SessionState,
    commands: mpsc::Sender<Command>,
    /// A Close was sent: it no longer counts, and may not go further.
    closing: bool,
    established_at: Option<Instant>,
}

/// The state a neighbor is reported in before any connection exists.
pub(crate) fn waiting_state(listening: bool) -> SessionState {
    if listening {
        SessionState::Active
    } else {
        SessionState::Idle
    }
}

/// A neighbor's task; its entry in the table must exist before it runs
/// (the speaker adds it, so `peers()` lists the neighbor at once).
pub(crate) struct Neighbor {
    pub config: NeighborConfig,
    pub local: LocalParams,
    pub retry: RetryPolicy,
    pub listening: bool,
    pub table: Arc<Table>,
}

struct Running {
    neighbor: Neighbor,
    events_sender: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    slots: HashMap<ConnectionId, Slot>,
    tasks: JoinSet<()>,
    next_id: ConnectionId,
    backoff: Duration,
    next_attempt: Option<Instant>,
}

impl Neighbor {
    pub async fn run(self, mut commands: mpsc::Receiver<NeighborCommand>) {
        let (events_sender, events) = mpsc::unbounded_channel();
        let mut running = Running {
            backoff: self.retry.initial,
            // An active neighbor is dialled straight away.
            next_attempt: self.config.connect_to.map(|_| Instant::now()),
            neighbor: self,
            events_sender,
            events,
            slots: HashMap::new(),
            tasks: JoinSet::new(),
            next_id: 0,
        };
        loop {
            running.schedule_attempt();
            let attempt_at = running.next_attempt;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(NeighborCommand::Incoming(stream)) => running.accept(stream),
                    Some(NeighborCommand::Update { retry, listening }) => {
                        running.neighbor.retry = retry;
                        running.neighbor.listening = listening;
                    }
                    Some(NeighborCommand::Stop(notification)) => {
                        running.stop(notification).await;
                        return;
                    }
                    None => {
                        running.stop(Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN)).await;
                        return;
                    }
                },
                Some(event) = running.events.recv() => running.handle(event),
                _ = sleep_until(attempt_at.unwrap_or_else(Instant::now)), if attempt_at.is_some() => {
                    running.next_attempt = None;
                    running.connect_out();
                }
                Some(_) = running.tasks.join_next(), if !running.tasks.is_empty() => {}
            }
            running.publish_state();
        }
    }
}

impl Running {
    fn address(&self) -> std::net::Ipv4Addr {
        self.neighbor.config.address
    }

    fn spawn(&mut self, direction: Direction, socket: Socket) {
        let id = self.next_id;
        self.next_id += 1;
        let (commands, command_receiver) = mpsc::channel(4);
        self.slots.insert(
            id,
            Slot {
                direction,
                state: match direction {
                    Direction::Inbound => SessionState::OpenSent,
                    Direction::Outbound => SessionState::Connect,
                },
                commands,
                closing: false,
                established_at: None,
            },
        );
        let connection = Connection {
            id,
            neighbor: self.neighbor.config.clone(),
            local: self.neighbor.local,
            table: Arc::clone(&self.neighbor.table),
            events: self.events_sender.clone(),
        };
        self.tasks.spawn(connection.run(socket, command_receiver));
    }

    fn close(&mut self, id: ConnectionId, notification: Notification) {
        if let Some(slot) = self.slots.get_mut(&id) {
            if !slot.closing {
                slot.closing = true;
                // A full queue means a Close is already waiting there.
                let _ = slot.commands.try_send(Command::Close(notification));
            }
        }
    }

    fn accept(&mut self, stream: TcpStream) {
        // A new connection from the router while an older one of its own is
        // still opening: the router gave up on the old one.
        let stale: Vec<ConnectionId> = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                slot.direction == Direction::Inbound
                    && !slot.closing
                    && slot.state != SessionState::Established
            })
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.close(
                id,
                Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION),
            );
        }
        debug!(peer = %self.address(), "accepted a connection");
        self.spawn(Direction::Inbound, Socket::Accepted(stream));
    }

    fn connect_out(&mut self) {
        let Some(remote) = self.neighbor.config.connect_to else {
            return;
        };
        debug!(peer = %self.address(), %remote, "connecting");
        self.spawn(
            Direction::Outbound,
            Socket::ConnectTo {
                remote,
                local_address: self.neighbor.config.local_address,
            },
        );
    }

    /// An active neighbor with no outbound connection, and no session up or
    /// about to be (OpenConfirm), gets its next attempt scheduled, with
    /// exponential backoff.
    fn schedule_attempt(&mut self) {
        let needed = self.neighbor.config.connect_to.is_some()
            && self.next_attempt.is_none()
            && !self.slots.values().any(|slot| {
                !slot.closing
                    && (slot.direction == Direction::Outbound
                        || slot.state >= SessionState::OpenConfirm)
            });
        if !needed {
            return;
        }
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        self.next_attempt = Some(Instant::now() + self.backoff.mul_f64(jitter));
        self.backoff = (self.backoff * 2).min(self.neighbor.retry.max);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::State(id, state) => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    // States only move forward; a late report must not walk
                    // back what this task already decided (OpenConfirm,
                    // Established).
                    slot.state = slot.state.max(state);
                }
            }
            Event::OpenReceived {
                id,
                remote_id,
                reply,
            } => {
                let proceed = self.resolve_collision(id, remote_id);
                if proceed {
                    if let Some(slot) = self.slots.get_mut(&id) {
                        slot.state = SessionState::OpenConfirm;
                    }
                    // A session is about to come up: a dial scheduled
                    // earlier would only collide with it.
                    self.next_attempt = None;
                }
                let _ = reply.send(proceed);
            }
            Event::KeepaliveReceived {
                id,
                remote_id,
                hold_time,
                reply,
            } => {
                let another_established = self.slots.iter().any(|(&other, slot)| {
                    other != id && !slot.closing && slot.state == SessionState::Established
                });
                let proceed =
                    !another_established && self.slots.get(&id).is_some_and(|slot| !slot.closing);
                if proceed {
                    if let Some(slot) = self.slots.get_mut(&id) {
                        slot.state = SessionState::Established;
                        slot.established_at = Some(Instant::now());
                    }
                    self.neighbor
                        .table
                        .session_established(self.address(), remote_id, hold_time);
                }
                let _ = reply.send(proceed);
            }
            Event::Closed { id, ending } => {
                let Some(slot) = self.slots.remove(&id) else {
                    return;
                };
                if let Some(established_at) = slot.established_at {
                    // This was the session whose routes are in the table.
                    self.neighbor.table.session_down(self.address());
                    // Only a session that stayed up resets the backoff, so a
                    // flapping router is not redialled at the shortest
                    // interval forever.
                    if established_at.elapsed() >= self.neighbor.retry.max {
                        self.backoff = self.neighbor.retry.initial;
                    }
                }
                if let Some(error) = ending.error {
                    self.neighbor.table.set_error(self.address(), error);
                }
            }
        }
    }

    /// RFC 4271 §6.8: with two connections to the same router, the one
    /// opened by the side with the lower BGP Identifier is closed. Returns
    /// whether connection `id` may go on.
    fn resolve_collision(&mut self, id: ConnectionId, remote_id: std::net::Ipv4Addr) -> bool {
        let Some(direction) = self
            .slots
            .get(&id)
            .filter(|s| !s.closing)
            .map(|s| s.direction)
        else {
            return false;
        };
        let others: Vec<(ConnectionId, Direction, SessionState)> = self
            .slots
            .iter()
            .filter(|(&other, slot)| other != id && !slot.closing)
            .map(|(&other, slot)| (other, slot.direction, slot.state))
            .collect();
        for (other, other_direction, other_state) in others {
            match other_state {
                // An established session wins over any newcomer.
                SessionState::Established => return false,
                SessionState::OpenConfirm => {
                    let loser = if other_direction == direction {
                        // Both from the router: the older one is stale.
                        other
                    } else {
                        let local_lower =
                            u32::from(self.neighbor.local.router_id) < u32::from(remote_id);
                        let opened_by_lower = if local_lower {
                            Direction::Outbound
                        } else {
                            Direction::Inbound
                        };
                        if direction == opened_by_lower {
                            id
                        } else {
                            other
                        }
                    };
                    if loser == id {
                        return false;
                    }
                    self.close(
                        other,
                        Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION),
                    );
                }
                _ => {}
            }
        }
        true
    }

    fn publish_state(&self) {
        let state = self
            .slots
            .values()
            .filter(|slot| !slot.closing)
            .map(|slot| slot.state)
            .max()
            .unwrap_or(waiting_state(self.neighbor.listening));
        self.neighbor.table.set_state(self.address(), state);
    }

    async fn stop(&mut self, notification: Notification) {
        let ids: Vec<ConnectionId> = self.slots.keys().copied().collect();
        for id in ids {
            if let Some(slot) = self.slots.get_mut(&id) {
                // Even connections already closing get the real reason.
                slot.closing = true;
                let _ = slot.commands.try_send(Command::Close(notification.clone()));
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !self.slots.is_empty() {
            tokio::select! {
                Some(event) = self.events.recv() => match event {
                    Event::Closed { id, .. } => {
                        self.slots.remove(&id);
                    }
                    Event::OpenReceived { reply, .. } | Event::KeepaliveReceived { reply, .. } => {
                        let _ = reply.send(false);
                    }
                    Event::State(..) => {}
                },
                _ = sleep_until(deadline) => break,
            }
        }
        // Whatever has not finished is cut off; its socket closes on drop.
        self.tasks.shutdown().await;
        self.neighbor.table.remove_peer(self.address());
    }
}
