//! The receive-only BGP speaker of a Lastmile node.
//!
//! In BGP mode a cache node peers with the ISP's router and learns from it
//! which subscriber prefixes it serves. This crate is that speaker: it
//! accepts (or opens) BGP sessions with the configured routers, keeps the
//! IPv4 unicast routes they announce, and reports sessions and routes to the
//! node agent. It never announces a route and never installs one.
//!
//! # Using it
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use lastmile_bgp::{NeighborConfig, Speaker, SpeakerConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let mut config = SpeakerConfig::new(64500, Ipv4Addr::new(198, 51, 100, 7));
//! config.listen = Some("0.0.0.0:179".parse().unwrap());
//! let mut router = NeighborConfig::new(Ipv4Addr::new(198, 51, 100, 1), 64501);
//! // Optional: also dial the router instead of only waiting for it.
//! router.connect_to = Some("198.51.100.1:179".parse().unwrap());
//! config.neighbors.push(router);
//!
//! let speaker = Speaker::start(config.clone()).await?;
//! let mut changes = speaker.subscribe();
//! while changes.changed().await.is_ok() {
//!     for peer in speaker.peers() {
//!         println!("{} {} {:?}", peer.address, peer.state, peer.last_error);
//!     }
//!     let routes = speaker.routes(); // a full snapshot; diff it to report
//! #   let _ = routes;
//! #   break;
//! }
//! config.hold_time = 30;
//! speaker.reconfigure(config).await?; // sessions restart with a Cease
//! speaker.shutdown().await; // Cease (administrative shutdown) to all
//! # Ok(())
//! # }
//! ```
//!
//! * [`Speaker::start`] validates the [`SpeakerConfig`] (an invalid one is
//!   an [`std::io::ErrorKind::InvalidInput`] error saying why), binds the
//!   listening socket and starts one task per neighbor. Port 179 needs
//!   `CAP_NET_BIND_SERVICE`; any other port works for labs.
//! * [`Speaker::reconfigure`] takes a whole new configuration. Unchanged
//!   neighbors keep their sessions; a removed neighbor gets a Cease (peer
//!   de-configured) and its routes are gone when the call returns; a
//!   changed neighbor (or all of them, when the ASN, router ID or hold time
//!   changes) gets a Cease (other configuration change) and starts over; a
//!   new listen address is bound before the old one is let go. On error
//!   nothing changes.
//! * [`Speaker::peers`] and [`Speaker::routes`] are cheap snapshots (sorted);
//!   [`Speaker::subscribe`] hands out a counter that is bumped on every
//!   change to either, so the agent can wait, snapshot and diff.
//! * [`PeerStatus::last_error`] says, for a person, why the session last
//!   went down or failed to come up, and stays after it recovers:
//!   `sent NOTIFICATION 4/0 (hold timer expired): no message from the peer
//!   in 9 s`, `received NOTIFICATION 2/2 (OPEN message error: bad peer AS)`,
//!   `sent NOTIFICATION 2/2 (OPEN message error: bad peer AS): the peer says
//!   it is AS 65099, configured AS 65001`, `could not connect to
//!   192.0.2.1:179: Connection refused`, `the peer closed the connection`.
//! * [`Speaker::shutdown`] closes every session with a Cease
//!   (administrative shutdown). Dropping the speaker instead cuts the
//!   sessions without a NOTIFICATION.
//!
//! # What it does on the wire
//!
//! * RFC 4271 sessions, receive-only: one connection task per TCP
//!   connection (Connect → OpenSent → OpenConfirm → Established), both
//!   passive (the router connects to [`SpeakerConfig::listen`]) and active
//!   ([`NeighborConfig::connect_to`], retried with exponential backoff and
//!   jitter, [`RetryPolicy`]). Connections from addresses that are not a
//!   configured neighbor get a Cease (connection rejected, RFC 4486).
//! * Connection collisions (RFC 4271 §6.8): when the router's connection
//!   and ours both reach OpenConfirm, the one opened by the side with the
//!   lower BGP Identifier is closed with a Cease (connection collision
//!   resolution); an Established session always wins over a newcomer.
//! * OPEN: iBGP and eBGP; 2- and 4-octet ASNs (AS_TRANS in My AS when the
//!   ASN needs four octets, the real one in the capability, RFC 6793). We
//!   advertise multiprotocol IPv4 unicast (RFC 4760), route refresh
//!   (RFC 2918) and 4-octet ASNs; unknown or malformed capabilities from the
//!   peer are ignored (RFC 5492). Errors: unsupported version (2/1, with the
//!   version we support), bad peer AS (2/2, also for a 4-octet ASN that
//!   does not match), bad BGP identifier (2/3: zero, multicast, or our own
//!   on iBGP, RFC 6286), unsupported optional parameter (2/4), hold time 1
//!   or 2 (2/6).
//! * Hold time: the smaller of ours and the router's; 0 means no keepalives
//!   and no hold timer; keepalives every third of it; expiry sends 4/0.
//! * Messages above 4096 octets are refused at the header (1/2) before the
//!   body is read; the extended message capability is not advertised.
//!   Header errors: 1/1 (marker), 1/2 (length, with the length as data),
//!   1/3 (type). Messages out of turn: 5/1, 5/2, 5/3 (RFC 6608).
//! * UPDATE errors follow RFC 7606 (see [`wire`]): treat-as-withdraw for
//!   malformed ORIGIN, AS_PATH (including AS 0, RFC 7607, and an eBGP path
//!   not starting with the peer's AS), NEXT_HOP, MED, LOCAL_PREF,
//!   communities, missing well-known attributes and attribute lengths that
//!   overrun the attribute field; attribute discard for ATOMIC_AGGREGATE,
//!   AGGREGATOR, AS4_PATH and AS4_AGGREGATOR (RFC 6793), and for LOCAL_PREF,
//!   ORIGINATOR_ID and CLUSTER_LIST from an external peer; session reset only
//!   where required: lengths past the message (3/1), unparseable NLRI or
//!   withdrawn routes (3/10), MP_REACH_NLRI or MP_UNREACH_NLRI repeated
//!   (3/1) or malformed (3/9), an unrecognized well-known attribute (3/2).
//!   Later copies of a repeated attribute are discarded. Multicast and
//!   reserved (224/3) prefixes are ignored (RFC 4271 §6.3).
//! * Routes come from the classic NLRI and withdrawn fields and from
//!   MP_REACH_NLRI / MP_UNREACH_NLRI for IPv4 unicast (other AFI/SAFIs are
//!   ignored). On a 2-octet session (the router lacks the capability) the
//!   AS path is rebuilt from AS_PATH and AS4_PATH (RFC 6793 §4.2.3).
//!   End-of-RIB is accepted but not relied upon. A dropped session flushes
//!   that neighbor's routes. More than [`NeighborConfig::max_prefixes`]
//!   prefixes close the session with a Cease (maximum number of prefixes,
//!   RFC 4486), which bounds the memory one router can take.
//! * Not supported (so never negotiated): IPv6 and other address families,
//!   graceful restart, ADD-PATH, extended messages, extended next hop
//!   (RFC 8950), BGP confederations (AS_CONFED segments are treated as a
//!   malformed AS_PATH), TCP-MD5/TCP-AO and GTSM, the extended optional
//!   parameters length of RFC 9072 (refused as 2/4). AS_SET members are
//!   listed flattened, in wire order, in [`Route::as_path`]. ROUTE-REFRESH
//!   requests from the router are accepted and need no answer (we announce
//!   nothing); we never send one.
//!
//! # Choice of library
//!
//! No crate on crates.io is a BGP speaker usable as a library, so the
//! session state machine is this crate's own (small, since it only
//! receives). Message encoding and decoding come from
//! [`netgauze-bgp-pkt`](https://crates.io/crates/netgauze-bgp-pkt) 0.13
//! (maintained, Apache-2.0, builds on Rust 1.95): it encodes our OPEN,
//! KEEPALIVE and NOTIFICATION messages, decodes and checks received OPENs
//! (version, hold time, BGP identifier, optional parameter types), and
//! decodes the path attribute values kept in the route table (ORIGIN,
//! AS_PATH and AS4_PATH, NEXT_HOP, AGGREGATOR). The one capability acted
//! upon, the 4-octet ASN, is looked up by walking the capability TLVs by
//! their lengths, because netgauze resumes after a malformed capability
//! wherever its decoder stopped.
//!
//! Its UPDATE decoder is not enough for RFC 7606, so it is not used for
//! whole UPDATEs: on the first malformed attribute it returns an error and
//! no NLRI, which makes treat-as-withdraw impossible (that needs the
//! prefixes of the very message whose attributes are broken); its lenient
//! mode skips a bad attribute by a guessed length; it detects neither
//! repeated nor missing attributes; and its error-to-NOTIFICATION mapping
//! is marked as still to be refined for RFC 7606. So [`wire`] walks the
//! UPDATE framing itself (withdrawn routes, each attribute's
//! flags/type/length header, NLRI, and the MP_REACH_NLRI/MP_UNREACH_NLRI
//! contents for IPv4 unicast), classifies every error as session reset,
//! treat-as-withdraw or attribute discard, and hands each attribute's own
//! bytes to netgauze for the value. NOTIFICATIONs are read raw, because
//! netgauze refuses codes it does not know and the operator should still
//! see them.
//!
//! # Tests
//!
//! `cargo test -p lastmile-bgp` runs, besides unit tests, sessions against
//! real routers on loopback addresses with non-179 ports, each test on its
//! own 127.x.y.0/24 so they run in parallel: BIRD 2 (`tests/bird.rs`:
//! passive and active, eBGP and iBGP, 4-octet ASNs, a 2-octet router with
//! AS4_PATH, withdrawals, restarts, hold timer expiry with the router
//! frozen by SIGSTOP, wrong ASNs both ways, collision, an unconfigured
//! router, reconfiguration and shutdown) and GoBGP (`tests/gobgp.rs`). The
//! daemons must be installed (Debian's `bird2` and `gobgpd`;
//! `scripts/test` installs them): a missing one fails the tests, it does
//! not skip them. `tests/raw_peer.rs` speaks to the speaker over TCP with
//! hand-made messages (broken headers, OPENs and UPDATEs, RFC 7606 cases,
//! timers, collisions, refusals), and `tests/decoder_mutations.rs` runs
//! seeded mutations of valid messages through the decoder.
//!
//! # Fuzzing
//!
//! `fuzz/` holds a libFuzzer target for [`wire::decode_message`] (the path
//! every received message takes) with the same invariants as the mutation
//! test. cargo-fuzz needs a nightly toolchain; `fuzz/run.sh` builds the
//! target on stable instead, with the sanitizer-coverage codegen flags
//! cargo-fuzz would pass (no AddressSanitizer, which needs nightly; the
//! crate and netgauze are safe Rust, so panics, overflow checks and debug
//! assertions are what there is to find), and seeds the corpus from
//! [`wire::samples`]. A long campaign:
//!
//! ```text
//! cd node-agent/bgp/fuzz
//! ./run.sh -max_total_time=3600 -jobs=2 -workers=2
//! ```
//!
//! With a nightly toolchain the same directory also works with
//! `cargo fuzz run decode_message`.

mod config;
mod framer;
mod neighbor;
mod session;
mod speaker;
mod status;
pub mod wire;

pub use config::{NeighborConfig, RetryPolicy, SpeakerConfig, DEFAULT_MAX_PREFIXES};
pub use speaker::Speaker;
pub use status::{PeerStatus, Route, SessionState};

#[cfg(test)]
mod tests {
    #[test]
    fn the_speaker_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<crate::Speaker>();
    }
}
