//! The speaker against BIRD 2 as the ISP's router.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::*;
use lastmile_bgp::{SessionState, Speaker};

/// Static routes BIRD announces; `subscribers2` can be toggled on its own.
const STATIC_ROUTES: &str = "
protocol static subscribers {
  ipv4;
  route 100.64.0.0/22 blackhole;
  route 100.64.8.0/24 blackhole { bgp_path.prepend(64512); bgp_path.prepend(64513); };
}
protocol static subscribers2 {
  ipv4;
  route 198.51.100.0/24 blackhole;
}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_ebgp_learns_prefixes_paths_and_withdrawals() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, speaker_port, 65000, "")
        ),
    );

    wait_for(&speaker, "three routes", |_, routes| routes.len() == 3).await;
    let status = peer(&speaker, lab.router_ip);
    assert_eq!(status.state, SessionState::Established);
    assert_eq!(status.remote_router_id, Some(lab.router_ip));
    assert_eq!(status.hold_time, Some(9));
    assert_eq!(status.prefixes_received, 3);
    assert!(status.established_since.is_some());
    let routes = speaker.routes();
    let by_prefix = |p: &str| {
        routes
            .iter()
            .find(|r| r.prefix.to_string() == p)
            .unwrap()
            .clone()
    };
    let plain = by_prefix("100.64.0.0/22");
    assert_eq!(plain.as_path, vec![65001]);
    assert_eq!(plain.next_hop, lab.router_ip);
    assert_eq!(plain.peer, lab.router_ip);
    assert_eq!(
        by_prefix("100.64.8.0/24").as_path,
        vec![65001, 64513, 64512]
    );

    bird.birdc("disable subscribers2");
    wait_for(&speaker, "the withdrawal", |_, routes| {
        prefixes(routes) == ["100.64.0.0/22", "100.64.8.0/24"]
    })
    .await;
    bird.birdc("enable subscribers2");
    wait_for(&speaker, "the re-announcement", |_, routes| {
        routes.len() == 3
    })
    .await;
    assert_eq!(peer(&speaker, lab.router_ip).established_count, 1);
    speaker.shutdown().await;
    bird.wait_log_says("Received: Administrative shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_ibgp_connects_out_and_keeps_the_next_hop() {
    let lab = Lab::new();
    let router_port = lab.free_port(lab.router_ip);
    // BIRD only listens: the session exists because the speaker dials it.
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol(
                "node",
                &lab,
                router_port,
                65000,
                179,
                65000,
                "passive on; ipv4 { next hop address 192.0.2.77; };"
            )
            // BIRD takes only one ipv4 channel block; drop the default one.
            .replace(
                "  ipv4 { import none; export where source = RTS_STATIC; };\n",
                ""
            )
            .replace(
                "next hop address 192.0.2.77;",
                "next hop address 192.0.2.77; import none; export where source = RTS_STATIC;"
            )
        ),
    );
    let mut config = lab.speaker_config(65000);
    config.listen = None;
    let mut neighbor = lab.neighbor(65000);
    neighbor.connect_to = Some(SocketAddr::new(lab.router_ip.into(), router_port));
    neighbor.local_address = Some(lab.speaker_ip);
    config.neighbors.push(neighbor);
    let speaker = Speaker::start(config).await.unwrap();
    assert_eq!(speaker.local_addr().await, None);

    wait_for(&speaker, "three routes", |_, routes| routes.len() == 3).await;
    let routes = speaker.routes();
    // iBGP: BIRD adds no AS of its own, and the next hop is what it set.
    let plain = routes
        .iter()
        .find(|r| r.prefix.to_string() == "100.64.0.0/22")
        .unwrap();
    assert_eq!(plain.as_path, Vec::<u32>::new());
    assert_eq!(plain.next_hop, Ipv4Addr::new(192, 0, 2, 77));
    let prepended = routes
        .iter()
        .find(|r| r.prefix.to_string() == "100.64.8.0/24")
        .unwrap();
    assert_eq!(prepended.as_path, vec![64513, 64512]);
    drop(bird);
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_octet_asns_on_both_sides() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(4_200_000_100);
    config.neighbors.push(lab.neighbor(4_200_000_200));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "protocol static subscribers {{
  ipv4;
  route 100.64.0.0/22 blackhole {{ bgp_path.prepend(4200000300); bgp_path.prepend(65010); }};
}}
{}",
            bgp_protocol(
                "node",
                &lab,
                router_port,
                4_200_000_200,
                speaker_port,
                4_200_000_100,
                ""
            )
        ),
    );
    wait_for(&speaker, "the route", |_, routes| routes.len() == 1).await;
    assert_eq!(
        speaker.routes()[0].as_path,
        vec![4_200_000_200, 65010, 4_200_000_300]
    );
    assert_eq!(peer(&speaker, lab.router_ip).remote_asn, 4_200_000_200);
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_octet_router_passes_four_octet_paths_in_as4_path() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    // Without the 4-octet capability BIRD sends AS_TRANS in AS_PATH and
    // the real path in AS4_PATH (RFC 6793 §4.2.2).
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "protocol static subscribers {{
  ipv4;
  route 100.64.0.0/22 blackhole {{ bgp_path.prepend(4200000300); bgp_path.prepend(65010); }};
}}
{}",
            bgp_protocol(
                "node",
                &lab,
                router_port,
                65001,
                speaker_port,
                65000,
                "enable as4 off;"
            )
        ),
    );
    wait_for(&speaker, "the route", |_, routes| routes.len() == 1).await;
    assert_eq!(
        speaker.routes()[0].as_path,
        vec![65001, 65010, 4_200_000_300]
    );
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_peer_asn_is_refused_both_ways() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    // The router is really AS 65001.
    config.neighbors.push(lab.neighbor(65099));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, speaker_port, 65000, "")
        ),
    );
    wait_for(&speaker, "our bad peer AS error", |peers, _| {
        peers[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("sent NOTIFICATION 2/2 (OPEN message error: bad peer AS)"))
    })
    .await;
    assert_ne!(
        peer(&speaker, lab.router_ip).state,
        SessionState::Established
    );
    bird.wait_log_says("Received: Bad peer AS");
    drop(bird);
    speaker.shutdown().await;

    // Now BIRD expects the node to be another AS.
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, speaker_port, 65077, "")
        ),
    );
    wait_for(
        &speaker,
        "the router's bad peer AS notification",
        |peers, _| {
            peers[0].last_error.as_deref().is_some_and(|e| {
                e.contains("received NOTIFICATION 2/2 (OPEN message error: bad peer AS)")
            })
        },
    )
    .await;
    assert!(speaker.routes().is_empty());
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_restart_flushes_routes_and_the_session_comes_back() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    let mut bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, speaker_port, 65000, "")
        ),
    );
    wait_for(&speaker, "three routes", |_, routes| routes.len() == 3).await;

    bird.stop();
    wait_for(&speaker, "the flush", |peers, routes| {
        routes.is_empty() && peers[0].state != SessionState::Established
    })
    .await;
    let status = peer(&speaker, lab.router_ip);
    assert_eq!(status.prefixes_received, 0);
    assert_eq!(status.uptime, None);
    let error = status.last_error.unwrap();
    assert!(
        error.contains("received NOTIFICATION 6/") || error.contains("closed"),
        "{error}"
    );

    bird.restart();
    wait_for(&speaker, "the session's return", |peers, routes| {
        routes.len() == 3 && peers[0].established_count == 2
    })
    .await;
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_neighbor_redials_a_restarted_router() {
    let lab = Lab::new();
    let router_port = lab.free_port(lab.router_ip);
    let mut bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, 179, 65000, "passive on;")
        ),
    );
    let mut config = lab.speaker_config(65000);
    config.listen = None;
    let mut neighbor = lab.neighbor(65001);
    neighbor.connect_to = Some(SocketAddr::new(lab.router_ip.into(), router_port));
    neighbor.local_address = Some(lab.speaker_ip);
    config.neighbors.push(neighbor);
    let speaker = Speaker::start(config).await.unwrap();
    wait_for(&speaker, "three routes", |_, routes| routes.len() == 3).await;

    bird.stop();
    wait_for(&speaker, "the flush", |_, routes| routes.is_empty()).await;
    // While the router is down, connection attempts fail and say why.
    wait_for(&speaker, "a failed dial", |peers, _| {
        peers[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("could not connect"))
    })
    .await;
    bird.restart();
    wait_for(&speaker, "the session's return", |peers, routes| {
        routes.len() == 3 && peers[0].established_count == 2
    })
    .await;
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_timer_expires_when_the_router_freezes() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.hold_time = 3;
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, speaker_port, 65000, "")
        ),
    );
    wait_for(&speaker, "three routes", |_, routes| routes.len() == 3).await;
    assert_eq!(peer(&speaker, lab.router_ip).hold_time, Some(3));

    bird.pause();
    wait_for(&speaker, "the hold timer", |peers, routes| {
        routes.is_empty()
            && peers[0].last_error.as_deref().is_some_and(|e| {
                e.contains("NOTIFICATION 4/0 (hold timer expired)")
                    && e.contains("no message from the peer in 3 s")
            })
    })
    .await;
    bird.resume();
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_dialling_end_with_one_session() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    let router_port = lab.free_port(lab.router_ip);
    let mut neighbor = lab.neighbor(65001);
    neighbor.connect_to = Some(SocketAddr::new(lab.router_ip.into(), router_port));
    neighbor.local_address = Some(lab.speaker_ip);
    config.neighbors.push(neighbor);
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, speaker_port, 65000, "")
        ),
    );
    wait_for(&speaker, "three routes", |_, routes| routes.len() == 3).await;
    // Whichever connection won, the session stays: no flapping from the
    // loser being closed.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let status = peer(&speaker, lab.router_ip);
    assert_eq!(status.state, SessionState::Established);
    assert_eq!(status.established_count, 1);
    assert_eq!(speaker.routes().len(), 3);
    bird.wait_protocol_says("node", "Established");
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfigured_router_is_refused() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let stranger_port = lab.free_port(lab.stranger_ip);
    // A router at an address the node was not told about.
    let bird = Bird::start(
        &lab,
        "stranger",
        lab.stranger_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, stranger_port, 65001, speaker_port, 65000, "").replace(
                &format!("local {}", lab.router_ip),
                &format!("local {}", lab.stranger_ip)
            )
        ),
    );
    bird.wait_log_says("Received: Connection rejected");
    assert!(speaker.routes().is_empty());
    assert_ne!(
        peer(&speaker, lab.router_ip).state,
        SessionState::Established
    );
    drop(bird);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfiguration_deconfigures_changes_and_adds_neighbors() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config.clone()).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    // Keep the port across reconfigurations: BIRD dials a fixed one.
    config.listen = Some(SocketAddr::new(lab.speaker_ip.into(), speaker_port));
    speaker.reconfigure(config.clone()).await.unwrap();
    assert_eq!(speaker.local_addr().await.unwrap().port(), speaker_port);
    let router_port = lab.free_port(lab.router_ip);
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "{STATIC_ROUTES}\n{}",
            bgp_protocol("node", &lab, router_port, 65001, speaker_port, 65000, "")
        ),
    );
    wait_for(&speaker, "three routes", |_, routes| routes.len() == 3).await;

    // Same configuration: nothing happens to the session.
    speaker.reconfigure(config.clone()).await.unwrap();
    assert_eq!(peer(&speaker, lab.router_ip).established_count, 1);

    // A new hold time changes our OPEN: the session restarts.
    config.hold_time = 6;
    speaker.reconfigure(config.clone()).await.unwrap();
    bird.wait_log_says("Received: Other configuration change");
    wait_for(&speaker, "the restarted session", |peers, routes| {
        routes.len() == 3 && peers[0].hold_time == Some(6)
    })
    .await;

    // Removed: Cease (peer de-configured) and the routes are gone at once.
    let neighbors = std::mem::take(&mut config.neighbors);
    speaker.reconfigure(config.clone()).await.unwrap();
    assert!(speaker.routes().is_empty());
    assert!(speaker.peers().is_empty());
    bird.wait_log_says("Received: Peer de-configured");

    // Added back.
    config.neighbors = neighbors;
    speaker.reconfigure(config).await.unwrap();
    wait_for(&speaker, "the session's return", |_, routes| {
        routes.len() == 3
    })
    .await;

    // Invalid configurations change nothing.
    let mut invalid = lab.speaker_config(65000);
    invalid.hold_time = 1;
    let error = speaker.reconfigure(invalid).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(speaker.routes().len(), 3);
    speaker.shutdown().await;
    bird.wait_log_says("Received: Administrative shutdown");
}
