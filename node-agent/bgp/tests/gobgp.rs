//! The speaker against GoBGP as the ISP's router.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::*;
use lastmile_bgp::{SessionState, Speaker};

/// gobgpd's configuration: one neighbor (the node). `passive` makes GoBGP
/// wait for the node to dial.
fn gobgp_config(
    lab: &Lab,
    router_asn: u32,
    router_port: u16,
    speaker_asn: u32,
    speaker_port: u16,
    passive: bool,
) -> String {
    format!(
        r#"[global.config]
  as = {router_asn}
  router-id = "{router}"
  port = {router_port}
  local-address-list = ["{router}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{speaker}"
    peer-as = {speaker_asn}
  [neighbors.transport.config]
    local-address = "{router}"
    remote-port = {speaker_port}
    passive-mode = {passive}
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
    idle-hold-time-after-reset = 1
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#,
        router = lab.router_ip,
        speaker = lab.speaker_ip,
    )
}

fn announce(gobgp: &GoBgp, prefix: &str, extra: &[&str]) {
    let mut args = vec!["global", "rib", "-a", "ipv4", "add", prefix];
    args.extend_from_slice(extra);
    gobgp.cli(&args);
}

fn withdraw(gobgp: &GoBgp, prefix: &str) {
    gobgp.cli(&["global", "rib", "-a", "ipv4", "del", prefix]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_ebgp_with_gobgp_announce_and_withdraw() {
    let lab = Lab::new();
    let mut config = lab.speaker_config(65000);
    config.neighbors.push(lab.neighbor(65001));
    let speaker = Speaker::start(config).await.unwrap();
    let speaker_port = speaker.local_addr().await.unwrap().port();
    let router_port = lab.free_port(lab.router_ip);
    let gobgp = GoBgp::start(
        &lab,
        &gobgp_config(&lab, 65001, router_port, 65000, speaker_port, false),
    );
    wait_for_state(&speaker, lab.router_ip, SessionState::Established).await;

    announce(
        &gobgp,
        "100.64.0.0/22",
        &["nexthop", "192.0.2.10", "aspath", "64512,4200000001"],
    );
    announce(&gobgp, "203.0.113.0/24", &["nexthop", "192.0.2.11"]);
    wait_for(&speaker, "two routes", |_, routes| routes.len() == 2).await;
    let routes = speaker.routes();
    assert_eq!(routes[0].prefix.to_string(), "100.64.0.0/22");
    assert_eq!(routes[0].as_path, vec![65001, 64512, 4_200_000_001]);
    assert_eq!(routes[0].peer, lab.router_ip);
    assert_eq!(routes[1].prefix.to_string(), "203.0.113.0/24");
    assert_eq!(routes[1].as_path, vec![65001]);
    // Over eBGP multihop GoBGP passes on the next hop it was given.
    assert_eq!(routes[0].next_hop, Ipv4Addr::new(192, 0, 2, 10));
    assert_eq!(routes[1].next_hop, Ipv4Addr::new(192, 0, 2, 11));

    withdraw(&gobgp, "100.64.0.0/22");
    wait_for(&speaker, "the withdrawal", |_, routes| {
        prefixes(routes) == ["203.0.113.0/24"]
    })
    .await;
    assert_eq!(peer(&speaker, lab.router_ip).prefixes_received, 1);
    speaker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_ibgp_with_four_octet_asn_to_gobgp() {
    let lab = Lab::new();
    let router_port = lab.free_port(lab.router_ip);
    let asn = 4_200_000_500;
    let gobgp = GoBgp::start(&lab, &gobgp_config(&lab, asn, router_port, asn, 179, true));
    announce(
        &gobgp,
        "100.64.4.0/24",
        &["nexthop", "192.0.2.20", "aspath", "65010"],
    );

    let mut config = lab.speaker_config(asn);
    config.listen = None;
    let mut neighbor = lab.neighbor(asn);
    neighbor.connect_to = Some(SocketAddr::new(lab.router_ip.into(), router_port));
    neighbor.local_address = Some(lab.speaker_ip);
    config.neighbors.push(neighbor);
    let speaker = Speaker::start(config).await.unwrap();

    wait_for(&speaker, "the route", |_, routes| routes.len() == 1).await;
    let route = &speaker.routes()[0];
    // iBGP: no AS added, the next hop passed through.
    assert_eq!(route.as_path, vec![65010]);
    assert_eq!(route.next_hop, Ipv4Addr::new(192, 0, 2, 20));
    let status = peer(&speaker, lab.router_ip);
    assert_eq!(status.remote_asn, asn);
    assert_eq!(status.state, SessionState::Established);

    withdraw(&gobgp, "100.64.4.0/24");
    wait_for(&speaker, "the withdrawal", |_, routes| routes.is_empty()).await;
    drop(gobgp);
    wait_for(&speaker, "the session to drop", |peers, _| {
        peers[0].state != SessionState::Established
    })
    .await;
}
