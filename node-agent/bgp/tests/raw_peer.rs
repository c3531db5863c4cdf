//! The speaker against a hand-made peer over real TCP: broken messages,
//! RFC 7606 handling, timers, collisions, refusals.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use lastmile_bgp::{NeighborConfig, SessionState, Speaker, SpeakerConfig};

const ROUTER_ASN: u32 = 65001;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

async fn start(lab: &Lab, adjust: impl FnOnce(&mut SpeakerConfig)) -> (Speaker, SocketAddr) {
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(ROUTER_ASN));
    adjust(&mut config);
    let speaker = Speaker::start(config).await.unwrap();
    let address = speaker.local_addr().await.unwrap();
    (speaker, address)
}

async fn established(
    lab: &Lab,
    speaker: &Speaker,
    address: SocketAddr,
    four_octet: bool,
) -> RawPeer {
    let mut router = RawPeer::connect(lab.router_ip, address).await;
    router
        .establish(ROUTER_ASN, 90, ROUTER_ID, four_octet)
        .await;
    wait_for_state(speaker, lab.router_ip, SessionState::Established).await;
    router
}

fn good_attributes(hop: Ipv4Addr) -> Vec<Vec<u8>> {
    vec![
        origin_igp(),
        as_path(&[ROUTER_ASN, 64512], true),
        next_hop(hop),
    ]
}

const HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

async fn last_error_contains(speaker: &Speaker, lab: &Lab, text: &str) {
    wait_for(speaker, &format!("last_error with {text:?}"), |peers, _| {
        peers
            .iter()
            .find(|p| p.address == lab.router_ip)
            .and_then(|p| p.last_error.as_deref())
            .is_some_and(|e| e.contains(text))
    })
    .await;
}

type HeaderCase = (Vec<u8>, (u8, u8), &'static [u8]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_errors_are_answered_with_their_notifications() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let mut bad_marker = keepalive();
    bad_marker[5] = 0;
    let mut too_short = keepalive();
    too_short[17] = 18;
    let mut too_long = message(2, &[0; 4100]);
    too_long[16..18].copy_from_slice(&4119u16.to_be_bytes());
    let mut bad_type = keepalive();
    bad_type[18] = 9;
    let long_keepalive = message(4, &[0]);
    // (message, expected code/subcode, expected data)
    let cases: Vec<HeaderCase> = vec![
        (bad_marker, (1, 1), &[]),
        (too_short, (1, 2), &[0, 18]),
        (too_long, (1, 2), &[0x10, 0x17]),
        (bad_type, (1, 3), &[9]),
        (long_keepalive, (1, 2), &[0, 20]),
    ];
    for (bytes, expected, data) in cases {
        let mut router = RawPeer::connect(lab.router_ip, address).await;
        router.expect_open().await;
        router.send_quietly(&bytes).await;
        let (code, subcode, got_data) = router.expect_notification().await;
        assert_eq!((code, subcode), expected, "for {:?}", &bytes[..19]);
        assert_eq!(got_data, data);
        assert_eq!(
            router.wait_closed().await,
            None,
            "the connection must close"
        );
    }
    last_error_contains(
        &speaker,
        &lab,
        "sent NOTIFICATION 1/2 (message header error: bad message length)",
    )
    .await;
    // Garbage from the start, e.g. a port scanner speaking HTTP.
    let mut router = RawPeer::connect(lab.router_ip, address).await;
    router
        .send_quietly(b"GET / HTTP/1.1\r\nHost: node\r\n\r\n")
        .await;
    assert_eq!(router.expect_notification().await.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_errors_are_answered_with_their_notifications() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let four_octet_says_65002 = [2, 6, 65, 4, 0, 0, 0xfd, 0xea];
    let cases: Vec<(Vec<u8>, (u8, u8), &str)> = vec![
        (
            open_with(3, 65001, 90, ROUTER_ID, &[]),
            (2, 1),
            "unsupported version",
        ),
        (open(65099, 90, ROUTER_ID, true), (2, 2), "bad peer AS"),
        (
            open_with(4, 65001, 90, ROUTER_ID, &four_octet_says_65002),
            (2, 2),
            "bad peer AS",
        ),
        (
            open(65001, 90, Ipv4Addr::UNSPECIFIED, true),
            (2, 3),
            "bad BGP identifier",
        ),
        (
            open(65001, 1, ROUTER_ID, true),
            (2, 6),
            "unacceptable hold time",
        ),
        (
            open(65001, 2, ROUTER_ID, true),
            (2, 6),
            "unacceptable hold time",
        ),
        (
            open_with(4, 65001, 90, ROUTER_ID, &[1, 2, 0, 0]),
            (2, 4),
            "unsupported optional parameter",
        ),
        // KEEPALIVE before OPEN.
        (keepalive(), (5, 1), "unexpected message in OpenSent"),
    ];
    for (bytes, expected, name) in cases {
        let mut router = RawPeer::connect(lab.router_ip, address).await;
        router.expect_open().await;
        router.send(&bytes).await;
        let (code, subcode, _) = router.expect_notification().await;
        assert_eq!((code, subcode), expected, "{name}");
        last_error_contains(&speaker, &lab, name).await;
    }
    // An iBGP peer with our own BGP identifier.
    let lab = Lab::new();
    let (_speaker, address) = start(&lab, |c| c.neighbors[0].remote_asn = 65000).await;
    let mut router = RawPeer::connect(lab.router_ip, address).await;
    router.expect_open().await;
    router.send(&open(65000, 90, lab.speaker_ip, true)).await;
    assert_eq!(router.expect_notification().await.1, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_open_proposes_what_we_support() {
    let lab = Lab::new();
    let (_speaker, address) = start(&lab, |c| c.local_asn = 4_200_000_000).await;
    let mut router = RawPeer::connect(lab.router_ip, address).await;
    let body = router.expect_open().await;
    assert_eq!(body[0], 4, "version");
    assert_eq!(u16::from_be_bytes([body[1], body[2]]), AS_TRANS);
    assert_eq!(u16::from_be_bytes([body[3], body[4]]), 9, "hold time");
    assert_eq!(&body[5..9], &lab.speaker_ip.octets());
    let params = &body[10..];
    for capability in [
        &[1, 4, 0, 1, 0, 1][..],
        &[2, 0],
        &[65, 4, 0xfa, 0x56, 0xea, 0x00],
    ] {
        assert!(
            params.windows(capability.len()).any(|w| w == capability),
            "capability {capability:?} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsm_errors_after_open() {
    let lab = Lab::new();
    let (_speaker, address) = start(&lab, |_| {}).await;
    // UPDATE in OpenConfirm; an unknown capability on the way is ignored.
    let mut router = RawPeer::connect(lab.router_ip, address).await;
    router.expect_open().await;
    let params = [2, 9, 1, 4, 0, 1, 0, 1, 200, 1, 7];
    router
        .send(&open_with(4, 65001, 90, ROUTER_ID, &params))
        .await;
    router.expect_keepalive().await;
    router.send(&update(&[], &[], &[])).await;
    let (code, subcode, _) = router.expect_notification().await;
    assert_eq!((code, subcode), (5, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_learned_and_withdrawn_classic_and_multiprotocol() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let mut router = established(&lab, &speaker, address, true).await;
    router
        .send(&update(
            &[],
            &good_attributes(HOP),
            &[nlri("100.64.0.0/22"), nlri("100.64.8.0/24")].concat(),
        ))
        .await;
    wait_for(&speaker, "two routes", |_, routes| routes.len() == 2).await;
    let route = &speaker.routes()[0];
    assert_eq!(route.as_path, vec![ROUTER_ASN, 64512]);
    assert_eq!(route.next_hop, HOP);

    let mp_hop = Ipv4Addr::new(192, 0, 2, 99);
    let mut reach = vec![0, 1, 1, 4];
    reach.extend_from_slice(&mp_hop.octets());
    reach.push(0);
    reach.extend(nlri("198.51.100.0/24"));
    let unreach = [&[0, 1, 1][..], &nlri("100.64.8.0/24")].concat();
    router
        .send(&update(
            &nlri("100.64.0.0/22"),
            &[
                attribute(0x80, 14, &reach),
                attribute(0x80, 15, &unreach),
                origin_igp(),
                as_path(&[ROUTER_ASN], true),
            ],
            &[],
        ))
        .await;
    wait_for(&speaker, "the multiprotocol update", |_, routes| {
        prefixes(routes) == ["198.51.100.0/24"] && routes[0].next_hop == mp_hop
    })
    .await;
    // End-of-RIB changes nothing.
    router.send(&update(&[], &[], &[])).await;
    router.send(&keepalive()).await;
    router
        .send(&update(&nlri("198.51.100.0/24"), &[], &[]))
        .await;
    wait_for(&speaker, "the classic withdrawal", |_, routes| {
        routes.is_empty()
    })
    .await;
    assert_eq!(
        peer(&speaker, lab.router_ip).state,
        SessionState::Established
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_attributes_are_treated_as_withdraw_and_the_session_stays_up() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let mut router = established(&lab, &speaker, address, true).await;
    let prefix = nlri("100.64.0.0/22");
    let announce = update(&[], &good_attributes(HOP), &prefix);

    let mut overrun = good_attributes(HOP);
    overrun[2][2] = 9; // NEXT_HOP claims 9 octets, the field has 4
    let broken: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "malformed AS_PATH",
            vec![
                origin_igp(),
                attribute(0x40, 2, &[2, 5, 0, 0, 0xfd, 0xe9]),
                next_hop(HOP),
            ],
        ),
        (
            "missing NEXT_HOP",
            vec![origin_igp(), as_path(&[ROUTER_ASN], true)],
        ),
        (
            "bad ORIGIN",
            vec![
                attribute(0x40, 1, &[9]),
                as_path(&[ROUTER_ASN], true),
                next_hop(HOP),
            ],
        ),
        ("attribute length overrun", overrun),
        (
            "AS_PATH not starting with the peer",
            vec![origin_igp(), as_path(&[64999], true), next_hop(HOP)],
        ),
        (
            "ORIGIN flagged optional",
            vec![
                attribute(0xc0, 1, &[0]),
                as_path(&[ROUTER_ASN], true),
                next_hop(HOP),
            ],
        ),
    ];
    for (name, attributes) in broken {
        router.send(&announce).await;
        wait_for(
            &speaker,
            &format!("the route before {name}"),
            |_, routes| routes.len() == 1,
        )
        .await;
        router.send(&update(&[], &attributes, &prefix)).await;
        wait_for(
            &speaker,
            &format!("{name} withdrawing the route"),
            |_, routes| routes.is_empty(),
        )
        .await;
        assert_eq!(
            peer(&speaker, lab.router_ip).state,
            SessionState::Established,
            "{name}"
        );
    }
    // A discardable error keeps the route (ATOMIC_AGGREGATE with a value).
    let discard = [good_attributes(HOP), vec![attribute(0x40, 6, &[1])]].concat();
    router.send(&update(&[], &discard, &prefix)).await;
    wait_for(
        &speaker,
        "the route despite a bad ATOMIC_AGGREGATE",
        |_, routes| routes.len() == 1,
    )
    .await;
    assert_eq!(peer(&speaker, lab.router_ip).established_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_errors_that_require_a_session_reset() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let prefix = nlri("100.64.0.0/22");
    let mut withdrawn_too_long = update(&[], &good_attributes(HOP), &prefix);
    withdrawn_too_long[19..21].copy_from_slice(&500u16.to_be_bytes());
    let mp_unreach = attribute(0x80, 15, &[0, 1, 1]);
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        (
            "prefix length 33",
            update(&[], &good_attributes(HOP), &[33, 1, 2, 3, 4, 5]),
            (3, 10),
        ),
        (
            "truncated prefix",
            update(&[], &good_attributes(HOP), &[24, 100, 64]),
            (3, 10),
        ),
        (
            "withdrawn length past the message",
            withdrawn_too_long,
            (3, 1),
        ),
        (
            "MP_UNREACH_NLRI twice",
            update(
                &[],
                &[good_attributes(HOP), vec![mp_unreach.clone(), mp_unreach]].concat(),
                &prefix,
            ),
            (3, 1),
        ),
        (
            "unrecognized well-known attribute",
            update(
                &[],
                &[good_attributes(HOP), vec![attribute(0x40, 99, &[1])]].concat(),
                &prefix,
            ),
            (3, 2),
        ),
        (
            "MP_REACH_NLRI with a 3-octet next hop",
            update(
                &[],
                &[
                    good_attributes(HOP),
                    vec![attribute(0x80, 14, &[0, 1, 1, 3, 1, 2, 3, 0])],
                ]
                .concat(),
                &[],
            ),
            (3, 9),
        ),
        (
            "OPEN in Established",
            open(ROUTER_ASN, 90, ROUTER_ID, true),
            (5, 3),
        ),
        ("KEEPALIVE with a body", message(4, &[1, 2]), (1, 2)),
    ];
    for (name, bytes, expected) in cases {
        let mut router = established(&lab, &speaker, address, true).await;
        router
            .send(&update(&[], &good_attributes(HOP), &nlri("203.0.113.0/24")))
            .await;
        wait_for(&speaker, "a route", |_, routes| routes.len() == 1).await;
        router.send(&bytes).await;
        let (code, subcode, _) = router.expect_notification().await;
        assert_eq!((code, subcode), expected, "{name}");
        assert_eq!(router.wait_closed().await, None);
        // The session's routes go with it.
        wait_for(
            &speaker,
            &format!("the flush after {name}"),
            |peers, routes| routes.is_empty() && peers[0].state != SessionState::Established,
        )
        .await;
        last_error_contains(
            &speaker,
            &lab,
            &format!("sent NOTIFICATION {code}/{subcode}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_octet_peer_paths_are_merged_with_as4_path() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let mut router = established(&lab, &speaker, address, false).await;
    let mut as4_path = vec![2, 2];
    as4_path.extend_from_slice(&4_200_000_001u32.to_be_bytes());
    as4_path.extend_from_slice(&65010u32.to_be_bytes());
    let attributes = vec![
        origin_igp(),
        as_path(&[ROUTER_ASN, AS_TRANS as u32, 65010], false),
        next_hop(HOP),
        attribute(0xc0, 17, &as4_path),
    ];
    router
        .send(&update(&[], &attributes, &nlri("100.64.0.0/22")))
        .await;
    wait_for(&speaker, "the route", |_, routes| routes.len() == 1).await;
    assert_eq!(
        speaker.routes()[0].as_path,
        vec![ROUTER_ASN, 4_200_000_001, 65010]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_prefixes_close_the_session_with_a_cease() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |c| c.neighbors[0].max_prefixes = 3).await;
    let mut router = established(&lab, &speaker, address, true).await;
    let four: Vec<u8> = (0..4u8)
        .flat_map(|i| nlri(&format!("100.64.{i}.0/24")))
        .collect();
    router
        .send(&update(&[], &good_attributes(HOP), &four))
        .await;
    let (code, subcode, data) = router.expect_notification().await;
    assert_eq!((code, subcode), (6, 1));
    assert_eq!(data, [0, 1, 1, 0, 0, 0, 3]);
    wait_for(&speaker, "the flush", |_, routes| routes.is_empty()).await;
    last_error_contains(&speaker, &lab, "more than 3 prefixes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_trips_the_hold_timer() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |c| c.hold_time = 3).await;
    let mut router = RawPeer::connect(lab.router_ip, address).await;
    router.establish(ROUTER_ASN, 30, ROUTER_ID, true).await;
    wait_for_state(&speaker, lab.router_ip, SessionState::Established).await;
    router
        .send(&update(&[], &good_attributes(HOP), &nlri("100.64.0.0/22")))
        .await;
    wait_for(&speaker, "the route", |_, routes| routes.len() == 1).await;
    // Say nothing more; the speaker keeps sending KEEPALIVEs (every second
    // for a 3 s hold time), then gives up.
    let started = tokio::time::Instant::now();
    let (code, subcode, _) = router.expect_notification().await;
    assert_eq!((code, subcode), (4, 0));
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_for(&speaker, "the flush", |_, routes| routes.is_empty()).await;
    last_error_contains(&speaker, &lab, "hold timer expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_time_zero_means_no_keepalives() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let mut router = RawPeer::connect(lab.router_ip, address).await;
    router.establish(ROUTER_ASN, 0, ROUTER_ID, true).await;
    wait_for_state(&speaker, lab.router_ip, SessionState::Established).await;
    assert_eq!(peer(&speaker, lab.router_ip).hold_time, Some(0));
    // Our proposal was 9 s: with keepalives one would come within 3 s.
    let quiet = tokio::time::timeout(Duration::from_secs(4), router.read_message()).await;
    assert!(
        quiet.is_err(),
        "the speaker sent {quiet:?} on a hold-time-0 session"
    );
    assert_eq!(
        peer(&speaker, lab.router_ip).state,
        SessionState::Established
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_from_an_unconfigured_address_is_refused() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let mut stranger = RawPeer::connect(lab.stranger_ip, address).await;
    // No OPEN for strangers: straight to Cease / connection rejected.
    match stranger.read_message().await {
        Some((3, body)) => assert_eq!((body[0], body[1]), (6, 5)),
        other => panic!("expected a Cease, got {other:?}"),
    }
    assert_eq!(stranger.wait_closed().await, None);
    assert_eq!(speaker.peers().len(), 1);
    assert_eq!(peer(&speaker, lab.router_ip).state, SessionState::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_vanishing_mid_message_is_survived() {
    let lab = Lab::new();
    let (speaker, address) = start(&lab, |_| {}).await;
    let mut router = established(&lab, &speaker, address, true).await;
    router
        .send(&update(&[], &good_attributes(HOP), &nlri("100.64.0.0/22")))
        .await;
    wait_for(&speaker, "the route", |_, routes| routes.len() == 1).await;
    router.send(&keepalive()[..11]).await;
    drop(router);
    wait_for(&speaker, "the flush", |_, routes| routes.is_empty()).await;
    last_error_contains(&speaker, &lab, "in the middle of a message").await;
    // And the next session is fine.
    let _peer = established(&lab, &speaker, address, true).await;
}

/// RFC 4271 §6.8 with both connections in flight: the one opened by the
/// side with the lower BGP Identifier is closed with Cease 6/7.
async fn collision(remote_id: Ipv4Addr) -> (bool, bool) {
    let lab = Lab::new();
    let router_listener = tokio::net::TcpListener::bind((lab.router_ip, 0))
        .await
        .unwrap();
    let router_address = router_listener.local_addr().unwrap();
    let (speaker, address) = start(&lab, |c| {
        c.neighbors[0] = NeighborConfig {
            connect_to: Some(router_address),
            local_address: Some(lab.speaker_ip),
            ..c.neighbors[0].clone()
        };
    })
    .await;
    let (outbound, _) = router_listener.accept().await.unwrap();
    let mut outbound = RawPeer { stream: outbound };
    outbound.expect_open().await;
    let mut inbound = RawPeer::connect(lab.router_ip, address).await;
    inbound.expect_open().await;

    outbound.send(&open(ROUTER_ASN, 90, remote_id, true)).await;
    outbound.expect_keepalive().await; // OpenConfirm
    inbound.send(&open(ROUTER_ASN, 90, remote_id, true)).await;

    let outcome = |message: Option<(u8, Vec<u8>)>| match message {
        Some((4, _)) => true,
        Some((3, body)) => {
            assert_eq!((body[0], body[1]), (6, 7), "collision Cease");
            false
        }
        other => panic!("unexpected {other:?}"),
    };
    let inbound_kept = outcome(inbound.read_message().await);
    let outbound_kept = outcome(outbound.read_message().await);
    let winner = if inbound_kept {
        &mut inbound
    } else {
        &mut outbound
    };
    winner.send(&keepalive()).await;
    wait_for_state(&speaker, lab.router_ip, SessionState::Established).await;
    assert_eq!(peer(&speaker, lab.router_ip).established_count, 1);
    (inbound_kept, outbound_kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_keeps_the_router_opened_connection_when_its_id_is_higher() {
    // 200.0.0.1 > 127.x.y.1: our own connection is the one to close.
    assert_eq!(collision(Ipv4Addr::new(200, 0, 0, 1)).await, (true, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_keeps_our_connection_when_the_router_id_is_lower() {
    assert_eq!(collision(Ipv4Addr::new(10, 0, 0, 1)).await, (false, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbors_are_listed_as_soon_as_the_speaker_starts() {
    let lab = Lab::new();
    let (speaker, _) = start(&lab, |_| {}).await;
    let peers = speaker.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].address, lab.router_ip);
    assert_eq!(peers[0].remote_asn, ROUTER_ASN);
    assert_eq!(peers[0].state, SessionState::Active);
    assert_eq!(peers[0].last_error, None);
    assert!(speaker.routes().is_empty());

    // Active only, towards a port nobody listens on: it dials, fails,
    // says why, and waits (Idle) before the next attempt.
    let lab = Lab::new();
    let closed_port = lab.free_port(lab.router_ip);
    let mut config = lab.speaker_config(65000);
    config.listen = None;
    let mut neighbor = lab.neighbor(ROUTER_ASN);
    neighbor.connect_to = Some(SocketAddr::new(lab.router_ip.into(), closed_port));
    config.neighbors.push(neighbor);
    let speaker = Speaker::start(config).await.unwrap();
    assert_eq!(speaker.peers().len(), 1);
    wait_for(&speaker, "a refused dial", |peers, _| {
        peers[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("could not connect") && e.contains("refused"))
    })
    .await;
    wait_for_state(&speaker, lab.router_ip, SessionState::Idle).await;
}
