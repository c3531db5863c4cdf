//! One TCP connection to a neighbor, driven through the RFC 4271 states:
//! (Connect) → OpenSent → OpenConfirm → Established, until it ends.
//!
//! The neighbor task ([`crate::neighbor`]) owns the decisions that involve
//! more than one connection: it approves each connection's OPEN (collision
//! detection, RFC 4271 §6.8) and its move to Established, so that at most
//! one connection per neighbor ever writes routes.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::config::NeighborConfig;
use crate::framer::{FrameError, Framer};
use crate::status::{SessionState, Table};
use crate::wire::notification::{cease, code, fsm, open as open_subcode};
use crate::wire::{self, DecodeContext, Message, Notification, OpenMessage};

/// RFC 4271 §8.2.2 suggests 4 minutes for the hold timer while waiting
/// for the peer's OPEN.
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that does not take 19 octets off its socket for this long is
/// gone, whatever its hold time says.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After our NOTIFICATION, how long the peer gets to read it and close.
const LINGER: Duration = Duration::from_secs(2);

const TYPE_OPEN: u8 = 1;
const TYPE_NOTIFICATION: u8 = 3;

/// What a connection needs from the speaker's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalParams {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The router connected to us.
    Inbound,
    /// We connected to the router.
    Outbound,
}

pub(crate) type ConnectionId = u64;

/// What a connection tells its neighbor task.
pub(crate) enum Event {
    State(ConnectionId, SessionState),
    /// The peer's OPEN is acceptable; may this connection go on?
    OpenReceived {
        id: ConnectionId,
        remote_id: Ipv4Addr,
        reply: oneshot::Sender<bool>,
    },
    /// The peer's KEEPALIVE arrived in OpenConfirm; may this connection be
    /// the neighbor's established session?
    KeepaliveReceived {
        id: ConnectionId,
        remote_id: Ipv4Addr,
        hold_time: u16,
        reply: oneshot::Sender<bool>,
    },
    Closed {
        id: ConnectionId,
        ending: Ending,
    },
}

/// How a connection ended.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    /// For `last_error`; `None` when the ending was no fault (a collision
    /// lost on purpose).
    pub error: Option<String>,
}

pub(crate) enum Command {
    /// Send this NOTIFICATION and close.
    Close(Notification),
}

pub(crate) enum Socket {
    Accepted(TcpStream),
    ConnectTo {
        remote: SocketAddr,
        local_address: Option<Ipv4Addr>,
    },
}

pub(crate) struct Connection {
    pub id: ConnectionId,
    pub neighbor: NeighborConfig,
    pub local: LocalParams,
    pub table: Arc<Table>,
    pub events: mpsc::UnboundedSender<Event>,
}

/// Sends `Closed` if the task ends without having said how (a panic, or the
/// task being aborted), so the neighbor task never waits on a dead one.
struct ClosedGuard {
    id: ConnectionId,
    events: mpsc::UnboundedSender<Event>,
    armed: bool,
}

impl Drop for ClosedGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.events.send(Event::Closed {
                id: self.id,
                ending: Ending {
                    error: Some("internal error: the session task stopped".into()),
                },
            });
        }
    }
}

/// Why the message loop stopped.
enum Stop {
    /// Send this NOTIFICATION, then close.
    Notify {
        notification: Notification,
        error: Option<String>,
    },
    /// Close without a NOTIFICATION (the peer closed, sent one, or the
    /// connection failed).
    Close(String),
}

impl Stop {
    /// We detected an error: tell the peer and record it.
    fn error(notification: Notification, detail: impl Into<Option<String>>) -> Stop {
        let error = match detail.into() {
            Some(detail) => format!("sent {notification}: {detail}"),
            None => format!("sent {notification}"),
        };
        Stop::Notify {
            notification,
            error: Some(error),
        }
    }
}

impl Connection {
    pub async fn run(self, socket: Socket, commands: mpsc::Receiver<Command>) {
        let mut guard = ClosedGuard {
            id: self.id,
            events: self.events.clone(),
            armed: true,
        };
        let ending = match self.open_socket(socket).await {
            Ok(stream) => self.run_stream(stream, commands).await,
            Err(error) => Ending { error: Some(error) },
        };
        guard.armed = false;
        let _ = self.events.send(Event::Closed {
            id: self.id,
            ending,
        });
    }

    fn report(&self, state: SessionState) {
        let _ = self.events.send(Event::State(self.id, state));
    }

    async fn open_socket(&self, socket: Socket) -> Result<TcpStream, String> {
        match socket {
            Socket::Accepted(stream) => Ok(stream),
            Socket::ConnectTo {
                remote,
                local_address,
            } => {
                self.report(SessionState::Connect);
                let attempt = async {
                    let socket = match remote {
                        SocketAddr::V4(_) => TcpSocket::new_v4()?,
                        SocketAddr::V6(_) => TcpSocket::new_v6()?,
                    };
                    if let Some(local_address) = local_address {
                        socket.bind(SocketAddr::new(local_address.into(), 0))?;
                    }
                    socket.connect(remote).await
                };
                match timeout(CONNECT_TIMEOUT, attempt).await {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(error)) => Err(format!("could not connect to {remote}: {error}")),
                    Err(_) => Err(format!(
                        "could not connect to {remote}: no answer in {} s",
                        CONNECT_TIMEOUT.as_secs()
                    )),
                }
            }
        }
    }

    async fn run_stream(&self, stream: TcpStream, mut commands: mpsc::Receiver<Command>) -> Ending {
        let _ = stream.set_nodelay(true);
        let peer = self.neighbor.address;
        let (read_half, mut write_half) = stream.into_split();
        let mut framer = Framer::new(read_half);
        let stop = self
            .exchange(&mut framer, &mut write_half, &mut commands)
            .await;
        match stop {
            Stop::Notify {
                notification,
                error,
            } => {
                match &error {
                    Some(error) => warn!(%peer, "session closed: {error}"),
                    None => debug!(%peer, "closing: sent {notification}"),
                }
                if let Ok(bytes) = wire::encode_notification(&notification) {
                    let _ = send(&mut write_half, &bytes).await;
                }
                linger_and_close(framer.into_inner(), write_half);
                Ending { error }
            }
            Stop::Close(error) => {
                info!(%peer, "session closed: {error}");
                Ending { error: Some(error) }
            }
        }
    }

    /// The message exchange, from our OPEN until the connection must stop.
    async fn exchange<R, W>(
        &self,
        framer: &mut Framer<R>,
        writer: &mut W,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Stop
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let open = match wire::encode_open(
            self.local.local_asn,
            self.local.hold_time,
            self.local.router_id,
        ) {
            Ok(open) => open,
            Err(error) => return Stop::Close(format!("could not encode our OPEN: {error}")),
        };
        if let Err(error) = send(writer, &open).await {
            return Stop::Close(format!("could not send OPEN: {error}"));
        }
        self.report(SessionState::OpenSent);

        // OpenSent: wait for the peer's OPEN.
        let deadline = Instant::now() + OPEN_HOLD_TIME;
        let frame = tokio::select! {
            command = commands.recv() => return stop_for(command),
            _ = sleep_until(deadline) => {
                return Stop::error(
                    hold_timer_expired(),
                    format!("no OPEN from the peer in {} s", OPEN_HOLD_TIME.as_secs()),
                );
            }
            frame = framer.next() => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return stop_for_frame_error(error),
        };
        // Only OPEN (or a NOTIFICATION) may come first (RFC 4271 §8.2.2).
        let decoded = match frame.get(wire::HEADER_LEN - 1) {
            Some(&TYPE_OPEN | &TYPE_NOTIFICATION) => {
                wire::decode_message(&frame, &self.decode_context(false))
            }
            _ => return unexpected_in_open_sent(),
        };
        let peer_open = match decoded {
            Ok(Message::Open(open)) => open,
            Ok(Message::Notification(notification)) => {
                return Stop::Close(format!("received {notification}"));
            }
            Ok(_) => return unexpected_in_open_sent(),
            Err(notification) => return Stop::error(notification, None),
        };
        if let Err(stop) = self.check_open(&peer_open) {
            return stop;
        }
        if !self
            .ask(|reply| Event::OpenReceived {
                id: self.id,
                remote_id: peer_open.bgp_id,
                reply,
            })
            .await
        {
            return collision_lost();
        }

        let hold_time = self.local.hold_time.min(peer_open.hold_time);
        let ctx = self.decode_context(peer_open.four_octet_asn.is_some());
        let keepalive = match wire::encode_keepalive() {
            Ok(keepalive) => keepalive,
            Err(error) => return Stop::Close(format!("could not encode KEEPALIVE: {error}")),
        };
        if let Err(error) = send(writer, &keepalive).await {
            return Stop::Close(format!("could not send KEEPALIVE: {error}"));
        }
        self.report(SessionState::OpenConfirm);

        // OpenConfirm and Established share the timers.
        let hold = (hold_time > 0).then(|| Duration::from_secs(hold_time.into()));
        let mut hold_deadline = hold.map(|hold| Instant::now() + hold);
        let keepalive_every = Duration::from_secs(u64::from(hold_time / 3).max(1));
        let mut keepalive_timer =
            tokio::time::interval_at(Instant::now() + keepalive_every, keepalive_every);
        keepalive_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut established = false;
        loop {
            let frame = tokio::select! {
                command = commands.recv() => return stop_for(command),
                _ = sleep_until(hold_deadline.unwrap_or_else(far_future)), if hold_deadline.is_some() => {
                    return Stop::error(
                        hold_timer_expired(),
                        format!("no message from the peer in {hold_time} s"),
                    );
                }
                _ = keepalive_timer.tick(), if hold.is_some() => {
                    if let Err(error) = send(writer, &keepalive).await {
                        return Stop::Close(format!("could not send KEEPALIVE: {error}"));
                    }
                    continue;
                }
                frame = framer.next() => frame,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => return stop_for_frame_error(error),
            };
            if let Some(hold) = hold {
                hold_deadline = Some(Instant::now() + hold);
            }
            let message = match wire::decode_message(&frame, &ctx) {
                Ok(message) => message,
                Err(notification) => return Stop::error(notification, None),
            };
            match (established, message) {
                (_, Message::Notification(notification)) => {
                    return Stop::Close(format!("received {notification}"));
                }
                (false, Message::KeepAlive) => {
                    if !self
                        .ask(|reply| Event::KeepaliveReceived {
                            id: self.id,
                            remote_id: peer_open.bgp_id,
                            hold_time,
                            reply,
                        })
                        .await
                    {
                        return collision_lost();
                    }
                    established = true;
                    info!(peer = %self.neighbor.address, hold_time, "session established");
                }
                (false, _) => {
                    return Stop::error(
                        Notification::new(code::FSM, fsm::UNEXPECTED_IN_OPEN_CONFIRM, Vec::new()),
                        "a message other than KEEPALIVE in OpenConfirm".to_string(),
                    );
                }
                (true, Message::KeepAlive | Message::RouteRefresh { .. }) => {
                    // Nothing is announced to the router, so a refresh
                    // request has nothing to answer with (RFC 2918 §4).
                }
                (true, Message::Open(_)) => {
                    return Stop::error(
                        Notification::new(code::FSM, fsm::UNEXPECTED_IN_ESTABLISHED, Vec::new()),
                        "an OPEN in Established".to_string(),
                    );
                }
                (true, Message::Update(update)) => {
                    if let Some(stop) = self.apply_update(update) {
                        return stop;
                    }
                }
            }
        }
    }

    fn decode_context(&self, four_octet_as: bool) -> DecodeContext {
        DecodeContext {
            four_octet_as,
            peer_asn: self.neighbor.remote_asn,
            ebgp: self.neighbor.remote_asn != self.local.local_asn,
        }
    }

    fn check_open(&self, open: &OpenMessage) -> Result<(), Stop> {
        if open.asn() != self.neighbor.remote_asn {
            return Err(Stop::error(
                Notification::new(code::OPEN, open_subcode::BAD_PEER_AS, Vec::new()),
                format!(
                    "the peer says it is AS {}, configured AS {}",
                    open.asn(),
                    self.neighbor.remote_asn
                ),
            ));
        }
        let ibgp = self.neighbor.remote_asn == self.local.local_asn;
        if ibgp && open.bgp_id == self.local.router_id {
            // RFC 6286 §2.2: internal peers need distinct identifiers.
            return Err(Stop::error(
                Notification::new(
                    code::OPEN,
                    open_subcode::BAD_BGP_IDENTIFIER,
                    open.bgp_id.octets().to_vec(),
                ),
                format!("the iBGP peer uses our own BGP identifier {}", open.bgp_id),
            ));
        }
        Ok(())
    }

    /// Asks the neighbor task a yes/no question; no answer means no (it is
    /// shutting down).
    async fn ask(&self, event: impl FnOnce(oneshot::Sender<bool>) -> Event) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.events.send(event(reply)).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    fn apply_update(&self, update: wire::UpdateOutcome) -> Option<Stop> {
        let peer = self.neighbor.address;
        for note in &update.notes {
            debug!(%peer, "UPDATE: {note}");
        }
        if let Some(reason) = &update.treated_as_withdraw {
            warn!(%peer, prefixes = update.withdrawn.len(), "UPDATE treated as withdraw (RFC 7606): {reason}");
        }
        let count = self.table.apply_update(peer, &update);
        if count > self.neighbor.max_prefixes as usize {
            // RFC 4486: AFI, SAFI and the limit as data.
            let mut data = vec![0, 1, 1];
            data.extend_from_slice(&self.neighbor.max_prefixes.to_be_bytes());
            return Some(Stop::error(
                Notification::new(code::CEASE, cease::MAXIMUM_PREFIXES_REACHED, data),
                format!("more than {} prefixes received", self.neighbor.max_prefixes),
            ));
        }
        None
    }
}

fn hold_timer_expired() -> Notification {
    Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new())
}

fn collision_lost() -> Stop {
    Stop::Notify {
        notification: Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION),
        error: None,
    }
}

fn stop_for(command: Option<Command>) -> Stop {
    match command {
        Some(Command::Close(notification)) => Stop::Notify {
            error: Some(format!("sent {notification}")),
            notification,
        },
        // The neighbor task is gone: the speaker is shutting down.
        None => Stop::Notify {
            notification: Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN),
            error: None,
        },
    }
}

fn stop_for_frame_error(error: FrameError) -> Stop {
    match error {
        FrameError::Closed => Stop::Close("the peer closed the connection".into()),
        FrameError::Io(error) => Stop::Close(format!("connection error: {error}")),
        FrameError::Header(notification) => Stop::error(notification, None),
    }
}

fn unexpected_in_open_sent() -> Stop {
    Stop::error(
        Notification::new(code::FSM, fsm::UNEXPECTED_IN_OPEN_SENT, Vec::new()),
        "a message other than OPEN in OpenSent".to_string(),
    )
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

async fn send<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> io::Result<()> {
    match timeout(WRITE_TIMEOUT, writer.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer is not reading",
        )),
    }
}

/// Closes our side and reads until the peer closes (or `LINGER` passes),
/// so the NOTIFICATION just written is not lost to a TCP reset caused by
/// unread data in our receive buffer.
pub(crate) async fn linger<R, W>(mut reader: R, mut writer: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = timeout(LINGER, async {
        let _ = writer.shutdown().await;
        let mut sink = [0u8; 1024];
        while let Ok(read) = reader.read(&mut sink).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}

/// [`linger`] in the background, bounded by `LINGER`.
fn linger_and_close<R, W>(reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(linger(reader, writer));
}
