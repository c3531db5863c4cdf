//! The speaker: the listening socket, one task per neighbor, and the
//! public handle the node agent holds.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Mutex, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{NeighborConfig, SpeakerConfig};
use crate::neighbor::{waiting_state, Neighbor, NeighborCommand};
use crate::session::{linger, LocalParams};
use crate::status::{PeerStatus, Route, Table};
use crate::wire::notification::cease;
use crate::wire::{self, Notification};

/// Refused connections answered at once; more are simply closed, so a
/// flood of strangers costs nothing but file descriptors briefly.
const MAX_CONCURRENT_REFUSALS: usize = 16;
/// Incoming connections queued for one neighbor before more are dropped.
const NEIGHBOR_QUEUE: usize = 4;

type Routing = Arc<RwLock<HashMap<Ipv4Addr, mpsc::Sender<NeighborCommand>>>>;

/// A running receive-only BGP speaker. See the crate documentation.
pub struct Speaker {
    table: Arc<Table>,
    runtime: Mutex<Runtime>,
}

struct Runtime {
    config: SpeakerConfig,
    listener: Option<ListenerTask>,
    routing: Routing,
    neighbors: HashMap<Ipv4Addr, NeighborTask>,
}

struct ListenerTask {
    configured: SocketAddr,
    bound: SocketAddr,
    task: JoinHandle<()>,
}

impl ListenerTask {
    /// Stops accepting and waits until the socket is closed, so its
    /// address can be bound again.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

struct NeighborTask {
    config: NeighborConfig,
    commands: mpsc::Sender<NeighborCommand>,
    task: JoinHandle<()>,
}

fn local_params(config: &SpeakerConfig) -> LocalParams {
    LocalParams {
        local_asn: config.local_asn,
        router_id: config.router_id,
        hold_time: config.hold_time,
    }
}

impl Speaker {
    /// Validates the configuration, binds the listening socket (if any) and
    /// starts a session task per neighbor. Must be called inside a Tokio
    /// runtime. Fails if the configuration is invalid
    /// ([`io::ErrorKind::InvalidInput`]) or the socket cannot be bound.
    pub async fn start(config: SpeakerConfig) -> io::Result<Speaker> {
        config.validate()?;
        let table = Arc::new(Table::new());
        let routing: Routing = Arc::default();
        let listener = match config.listen {
            Some(address) => Some(start_listener(address, Arc::clone(&routing))?),
            None => None,
        };
        let mut runtime = Runtime {
            config: config.clone(),
            listener,
            routing,
            neighbors: HashMap::new(),
        };
        for neighbor in &config.neighbors {
            runtime.start_neighbor(neighbor.clone(), &table);
        }
        info!(
            asn = config.local_asn,
            router_id = %config.router_id,
            listen = ?runtime.listener.as_ref().map(|l| l.bound),
            neighbors = config.neighbors.len(),
            "BGP speaker started"
        );
        Ok(Speaker {
            table,
            runtime: Mutex::new(runtime),
        })
    }

    /// Applies a new configuration. Unchanged neighbors keep their
    /// sessions. A removed neighbor gets a Cease (peer de-configured) and
    /// its routes are flushed; a changed one, or every neighbor when the
    /// ASN, router ID or hold time changes, gets a Cease (other
    /// configuration change) and starts over. Returns once removed
    /// neighbors are gone. On error (invalid configuration, listening
    /// socket that cannot be bound) nothing is changed.
    pub async fn reconfigure(&self, config: SpeakerConfig) -> io::Result<()> {
        config.validate()?;
        let mut runtime = self.runtime.lock().await;
        if config == runtime.config {
            return Ok(());
        }
        if config.listen != runtime.config.listen {
            runtime.rebind(config.listen).await?;
        }
        let restart_all = local_params(&config) != local_params(&runtime.config);
        let wanted: HashMap<Ipv4Addr, &NeighborConfig> =
            config.neighbors.iter().map(|n| (n.address, n)).collect();

        let mut stopping = Vec::new();
        let current: Vec<Ipv4Addr> = runtime.neighbors.keys().copied().collect();
        for address in current {
            let reason = match wanted.get(&address) {
                None => cease::PEER_DECONFIGURED,
                Some(&new) if restart_all || runtime.neighbors[&address].config != *new => {
                    cease::OTHER_CONFIGURATION_CHANGE
                }
                Some(_) => continue,
            };
            if let Some(neighbor) = runtime.stop_neighbor(address, reason) {
                stopping.push(neighbor);
            }
        }
        for task in stopping {
            let _ = task.await;
        }

        let listening = runtime.listener.is_some();
        for neighbor in runtime.neighbors.values() {
            let _ = neighbor.commands.try_send(NeighborCommand::Update {
                retry: config.connect_retry,
                listening,
            });
        }
        runtime.config = config.clone();
        for neighbor in &config.neighbors {
            if !runtime.neighbors.contains_key(&neighbor.address) {
                runtime.start_neighbor(neighbor.clone(), &self.table);
            }
        }
        info!(
            neighbors = config.neighbors.len(),
            "BGP speaker reconfigured"
        );
        Ok(())
    }

    /// Every configured neighbor's session.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.table.peers()
    }

    /// Every route learned, sorted by prefix, then next hop, AS path, peer.
    pub fn routes(&self) -> Vec<Route> {
        self.table.routes()
    }

    /// A counter bumped whenever routes or peer states change; wait on it,
    /// then read [`Speaker::peers`] and [`Speaker::routes`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.table.subscribe()
    }

    /// The address the speaker actually listens on (with the port the
    /// kernel chose, when the configuration said port 0).
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        self.runtime.lock().await.listener.as_ref().map(|l| l.bound)
    }

    /// Sends a Cease (administrative shutdown) on every session and stops.
    pub async fn shutdown(self) {
        let mut runtime = self.runtime.lock().await;
        if let Some(listener) = runtime.listener.take() {
            listener.stop().await;
        }
        let addresses: Vec<Ipv4Addr> = runtime.neighbors.keys().copied().collect();
        let stopping: Vec<JoinHandle<()>> = addresses
            .into_iter()
            .filter_map(|address| runtime.stop_neighbor(address, cease::ADMINISTRATIVE_SHUTDOWN))
            .collect();
        for task in stopping {
            let _ = task.await;
        }
        info!("BGP speaker stopped");
    }
}

impl Drop for Speaker {
    /// Dropped without `shutdown`: the tasks are cut off (sockets close
    /// without a NOTIFICATION).
    fn drop(&mut self) {
        let runtime = self.runtime.get_mut();
        if let Some(listener) = runtime.listener.take() {
            listener.task.abort();
        }
        for (_, neighbor) in runtime.neighbors.drain() {
            neighbor.task.abort();
        }
    }
}

impl Runtime {
    fn start_neighbor(&mut self, config: NeighborConfig, table: &Arc<Table>) {
        let (commands, receiver) = mpsc::channel(NEIGHBOR_QUEUE);
        let neighbor = Neighbor {
            config: config.clone(),
            local: local_params(&self.config),
            retry: self.config.connect_retry,
            listening: self.listener.is_some(),
            table: Arc::clone(table),
        };
        table.add_peer(
            config.address,
            config.remote_asn,
            waiting_state(neighbor.listening),
        );
        let task = tokio::spawn(neighbor.run(receiver));
        write_routing(&self.routing).insert(config.address, commands.clone());
        self.neighbors.insert(
            config.address,
            NeighborTask {
                config,
                commands,
                task,
            },
        );
    }

    /// Tells the neighbor task to close its sessions with a Cease of this
    /// subcode; returns the task to wait for.
    fn stop_neighbor(&mut self, address: Ipv4Addr, subcode: u8) -> Option<JoinHandle<()>> {
        write_routing(&self.routing).remove(&address);
        let neighbor = self.neighbors.remove(&address)?;
        // The queue may be full of incoming connections; the task then
        // sees the channel close (it treats that as a shutdown) instead.
        let stop = NeighborCommand::Stop(Notification::cease(subcode));
        if neighbor.commands.try_send(stop).is_err() {
            drop(neighbor.commands);
        }
        Some(neighbor.task)
    }

    async fn rebind(&mut self, listen: Option<SocketAddr>) -> io::Result<()> {
        let Some(address) = listen else {
            if let Some(old) = self.listener.take() {
                old.stop().await;
            }
            return Ok(());
        };
        match start_listener(address, Arc::clone(&self.routing)) {
            Ok(listener) => {
                if let Some(old) = self.listener.replace(listener) {
                    old.stop().await;
                }
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && self.listener.is_some() => {
                // The old socket may be the one in the way (same port,
                // wider or narrower address): release it, then retry, and
                // put it back if the new one still cannot be had.
                let mut old = None;
                if let Some(listener) = self.listener.take() {
                    old = Some(listener.configured);
                    listener.stop().await;
                }
                match start_listener(address, Arc::clone(&self.routing)) {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        Ok(())
                    }
                    Err(error) => {
                        if let Some(old) = old {
                            match start_listener(old, Arc::clone(&self.routing)) {
                                Ok(listener) => self.listener = Some(listener),
                                Err(restore) => {
                                    warn!(%old, "could not listen again after a failed change: {restore}")
                                }
                            }
                        }
                        Err(error)
                    }
                }
            }
            Err(error) => Err(error),
        }
    }
}

fn write_routing(
    routing: &Routing,
) -> std::sync::RwLockWriteGuard<'_, HashMap<Ipv4Addr, mpsc::Sender<NeighborCommand>>> {
    routing
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn start_listener(address: SocketAddr, routing: Routing) -> io::Result<ListenerTask> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Lets a restarted node listen again at once, despite connections of
    // the previous run still in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let listener = socket.listen(128)?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, routing));
    Ok(ListenerTask {
        configured: address,
        bound,
        task,
    })
}

async fn accept_loop(listener: TcpListener, routing: Routing) {
    let refusals = Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off a little
                // rather than spin.
                warn!("accepting a BGP connection failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = match remote {
            SocketAddr::V4(v4) => Some(*v4.ip()),
            SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped(),
        };
        let neighbor = peer.and_then(|peer| {
            routing
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&peer)
                .cloned()
        });
        match neighbor {
            Some(commands) => {
                if commands
                    .try_send(NeighborCommand::Incoming(stream))
                    .is_err()
                {
                    warn!(%remote, "dropped a connection: too many pending from this neighbor");
                }
            }
            None => {
                warn!(%remote, "refused a BGP connection from an unconfigured address");
                if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// Cease / connection rejected (RFC 4486), then close.
async fn refuse(stream: TcpStream) {
    let (reader, mut writer) = stream.into_split();
    if let Ok(bytes) = wire::encode_notification(&Notification::cease(cease::CONNECTION_REJECTED)) {
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), writer.write_all(&bytes)).await;
    }
    linger(reader, writer).await;
}
