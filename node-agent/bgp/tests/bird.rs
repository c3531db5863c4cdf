//! The speaker against BIRD 2 as the ISP's router.

mod common;

use common::*;
use lastmile_bgp::{SessionState, Speaker};

/// BIRD's side of a session with the node. `extra` goes inside the
/// protocol block (timers, passive, next hop policy...).
fn bgp_protocol(
    name: &str,
    lab: &Lab,
    router_port: u16,
    router_asn: u32,
    speaker_port: u16,
    speaker_asn: u32,
    extra: &str,
) -> String {
    format!(
        "protocol bgp {name} {{
  local {router} port {router_port} as {router_asn};
  neighbor {speaker} port {speaker_port} as {speaker_asn};
  multihop;
  hold time 9;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  {extra}
  ipv4 {{ import none; export where source = RTS_STATIC; }};
}}",
        router = lab.router_ip,
        speaker = lab.speaker_ip,
    )
}

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
    bird.wait_protocol_says("node", "Administrative shutdown");
}
