//! End to end in BGP mode: BIRD as the ISP's router announces subscriber
//! prefixes to the real agent, the portal shows them, steering sends a
//! client in them to the node; when the router withdraws a prefix, the
//! client goes to the CDN.

#[path = "../bgp/tests/common/mod.rs"]
mod bgp_lab;
#[path = "../../server/tests/common/mod.rs"]
mod common;
mod support;

use bgp_lab::{bgp_protocol, Bird, Lab};
use common::*;
use serde_json::Value;
use support::*;

const NODE_ASN: u32 = 4_200_000_001;
const ROUTER_ASN: u32 = 65001;

on_both_backends!(routes_from_the_router_reach_steering_and_leave_it);

async fn routes_from_the_router_reach_steering_and_leave_it(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal_with(
        &test_db,
        PortalOptions {
            tls: Tls::TestCa,
            report_interval_secs: 1,
            config_poll_secs: 1,
            ..Default::default()
        },
    )
    .await;
    let lab = Lab::new();
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let drive = work.path().join("drive");
    std::fs::create_dir_all(&drive).unwrap();

    // The node lives on the lab's node address, which is also its BGP
    // identifier; the router is the lab's router address.
    admin
        .call(
            "create_node",
            &[
                ("name", "bgpnode"),
                ("public_ipv4", &lab.speaker_ip.to_string()),
                ("max_egress_mbps", "1000"),
                ("enabled", "on"),
                ("drives", &format!("{} 1", drive.display())),
                ("extra_hosts", ORIGIN_HOST),
            ],
        )
        .await
        .unwrap();
    admin
        .call(
            "save_bgp",
            &[
                ("name", "bgpnode"),
                ("asn", &NODE_ASN.to_string()),
                ("neighbors", &format!("{} {ROUTER_ASN}", lab.router_ip)),
            ],
        )
        .await
        .unwrap();
    admin
        .call("set_routing_mode", &[("name", "bgpnode"), ("mode", "bgp")])
        .await
        .unwrap();
    let key = admin
        .call("issue_registration_key", &[("name", "bgpnode")])
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let state = work.path().join("state");
    let out = register_with(&portal, &key, &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bgp_port = lab.free_port(lab.speaker_ip);
    let data_port = lab.free_port(lab.speaker_ip);
    let agent = AgentProcess::start_at(
        &state,
        lab.speaker_ip,
        data_port,
        bgp_port,
        &origin,
        work.path().join("agent.log"),
    );

    // The router connects to the node (the node is passive) and announces
    // two blocks; one of them can be withdrawn on its own.
    let router_port = lab.free_port(lab.router_ip);
    let bird = Bird::start(
        &lab,
        "router",
        lab.router_ip,
        &format!(
            "protocol static subscribers {{ ipv4; route 100.64.0.0/22 blackhole; }}
protocol static more {{ ipv4; route 198.51.100.0/24 blackhole; }}
{}",
            bgp_protocol(
                "node",
                &lab,
                router_port,
                ROUTER_ASN,
                bgp_port,
                NODE_ASN,
                ""
            ),
        ),
    );

    let detail = eventually("the portal to show two learned prefixes", 60, || async {
        let d = node(&admin, "bgpnode").await;
        (d["learned"]["prefixes"] == 2 && d["health"]["bgp_sessions"][0]["state"] == "Established")
            .then_some(d)
    })
    .await;
    assert_eq!(detail["learned"]["addresses"], 1024 + 256);
    assert_eq!(
        detail["health"]["bgp_sessions"][0]["neighbor"],
        lab.router_ip.to_string()
    );
    let api = Api::for_client(&admin).await;
    let (status, routes) = api.get("/api/v1/nodes/bgpnode/bgp/routes").await;
    assert_eq!(status, 200);
    let learned: Vec<&str> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(learned, ["100.64.0.0/22", "198.51.100.0/24"]);
    assert_eq!(routes[0]["as_path"], serde_json::json!([ROUTER_ASN]));

    // Steering sends a client in a learned block to the node.
    steered_to(&portal, "198.51.100.7", "bgpnode").await;
    let answer: Value = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("{}/api/v1/steer?client=198.51.100.7", portal.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["source"], "bgp");
    assert_eq!(answer["prefix"], "198.51.100.0/24");
    assert_eq!(
        answer["nodes"][0]["url"],
        format!("http://{}:{data_port}", lab.speaker_ip)
    );

    // The router withdraws the block: within seconds the client goes to
    // the CDN, and the other block still leads to the node.
    bird.birdc("disable more");
    steered_to(&portal, "198.51.100.7", "CDN").await;
    steered_to(&portal, "100.64.1.1", "bgpnode").await;
    eventually("the portal to show one learned prefix", 20, || async {
        let d = node(&admin, "bgpnode").await;
        (d["learned"]["prefixes"] == 1).then_some(())
    })
    .await;
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
}
