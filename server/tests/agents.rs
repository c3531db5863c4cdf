//! The agent API and steering, spoken to over real HTTP the way an agent and
//! an update client do, on both databases. (The real agent binary against a
//! real portal is in node-agent's tests.)

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

on_both_backends!(
    agents_pull_acknowledge_and_report,
    counters_never_go_backwards,
    broken_agent_reports_are_refused_whole,
    steering_follows_specificity_health_and_draining,
    steering_uses_learned_routes_and_their_deltas,
    operators_see_why_a_subscriber_goes_where_it_goes,
);

/// Speaks for one node, with its credential.
struct AgentClient {
    http: reqwest::Client,
    base: String,
    credential: String,
}

impl AgentClient {
    async fn get_config(&self, etag: Option<&str>) -> (u16, Option<String>, Value) {
        let mut req = self
            .http
            .get(format!("{}{}", self.base, lastmile_wire::CONFIG_PATH))
            .bearer_auth(&self.credential);
        if let Some(etag) = etag {
            req = req.header("if-none-match", etag);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let etag = res
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.json().await.unwrap_or(Value::Null);
        (status, etag, body)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.credential)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn applied(&self, version: i64, error: Option<&str>) -> (u16, Value) {
        self.post(
            lastmile_wire::APPLIED_PATH,
            json!({"version": version, "error": error}),
        )
        .await
    }

    async fn report(&self, report: Value) -> (u16, Value) {
        self.post(lastmile_wire::REPORT_PATH, report).await
    }
}

/// A report as the agent sends it, with the given cumulative counters.
fn report(boot: &str, requests: u64, hit: u64, miss: u64) -> Value {
    json!({
        "boot_id": boot,
        "agent_version": "0.1.0",
        "data_port": 8080,
        "counters": {
            "requests": requests, "hit_bytes": hit, "miss_bytes": miss,
            "origin_bytes": miss, "errors": 0,
            "families": {"windows_update": hit + miss, "office": 0, "xbox": 0, "edge": 0, "other": 0}
        },
        "active_connections": 3,
        "drives": [{"path": "/var/cache/lastmile1", "used_bytes": 1000, "quota_bytes": 500000000000u64}],
        "serving": true,
        "problems": [],
        "bgp": null
    })
}

/// Creates a node, registers an agent for it and returns the agent's client.
async fn registered_node(portal: &TestPortal, admin: &Client, name: &str, ip: &str) -> AgentClient {
    create_node(admin, name, ip).await.expect("create node");
    let issued = admin
        .call("issue_registration_key", &[("name", name)])
        .await
        .expect("issue key");
    let (status, body) = register(&portal.base, issued["key"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    AgentClient {
        http: reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap(),
        base: portal.base.clone(),
        credential: body["credential"].as_str().unwrap().to_string(),
    }
}

async fn node(admin: &Client, name: &str) -> Value {
    admin
        .call("node", &[("name", name)])
        .await
        .expect("node detail")
}

async fn agents_pull_acknowledge_and_report(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let agent = registered_node(&portal, &admin, "edge1", "203.0.113.10").await;

    // The configuration, and a 304 while it has not changed.
    let (status, etag, config) = agent.get_config(None).await;
    assert_eq!(status, 200);
    assert_eq!(config["node_name"], "edge1");
    assert_eq!(config["routing"]["mode"], "manual");
    assert_eq!(config["drives"][1]["path"], "/var/cache/lastmile2");
    assert_eq!(config["report_interval_secs"], 30);
    let etag = etag.expect("an ETag");
    let (status, _, _) = agent.get_config(Some(&etag)).await;
    assert_eq!(status, 304);
    let version = config["version"].as_i64().unwrap();
    assert_eq!(node(&admin, "edge1").await["config_state"], "pending");

    assert_eq!(agent.applied(version, None).await.0, 204);
    let detail = node(&admin, "edge1").await;
    assert_eq!(detail["config_state"], "applied");
    assert_eq!(detail["state"], "online");

    // A change reaches the agent as a new version; failing to apply it
    // shows the reason.
    admin
        .call(
            "update_node",
            &[
                ("name", "edge1"),
                ("public_ipv4", "203.0.113.10"),
                ("max_egress_mbps", "2000"),
                ("enabled", "on"),
                ("drives", "/srv/cache 100"),
                ("extra_hosts", "origin.test"),
            ],
        )
        .await
        .expect("update");
    let (status, new_etag, config) = agent.get_config(Some(&etag)).await;
    assert_eq!(status, 200);
    assert_ne!(new_etag.unwrap(), etag);
    assert_eq!(config["max_egress_mbps"], 2000);
    assert_eq!(config["extra_allowed_hosts"], json!(["origin.test"]));
    let new_version = config["version"].as_i64().unwrap();
    assert!(new_version > version);
    assert_eq!(node(&admin, "edge1").await["config_state"], "pending");
    agent
        .applied(new_version, Some("drive /srv/cache is not writable"))
        .await;
    let detail = node(&admin, "edge1").await;
    assert_eq!(detail["config_state"], "failed");
    assert_eq!(detail["apply_error"], "drive /srv/cache is not writable");
    // A version never issued is a broken agent.
    let (status, body) = agent.applied(new_version + 5, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("never issued"));
    // A further change leaves "failed" behind: pending until the agent
    // answers for the new version.
    admin
        .call(
            "set_node_enabled",
            &[("name", "edge1"), ("enabled", "true")],
        )
        .await
        .unwrap();
    let detail = node(&admin, "edge1").await;
    assert_eq!(detail["config_state"], "pending");
    assert_eq!(detail["apply_error"], Value::Null);
    let latest = detail["config_version"].as_i64().unwrap();
    agent.applied(latest, None).await;
    assert_eq!(node(&admin, "edge1").await["config_state"], "applied");

    // A report: health, drives and totals on the node's page.
    let (status, body) = agent.report(report("boot-a", 10, 5000, 1000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["send_full_routes"], false);
    let detail = node(&admin, "edge1").await;
    assert_eq!(detail["totals"]["hit_bytes"], 5000);
    assert_eq!(detail["totals"]["requests"], 10);
    assert_eq!(detail["health"]["serving"], true);
    assert_eq!(detail["health"]["data_port"], 8080);
    assert_eq!(detail["health"]["drives"][0]["used_bytes"], 1000);
    assert_eq!(detail["agent_version"], "0.1.0");

    // Without a credential, or with a wrong one, nothing is answered.
    let anonymous = reqwest::get(format!("{}{}", portal.base, lastmile_wire::CONFIG_PATH))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let forged = AgentClient {
        credential: "lmn_0000".into(),
        http: reqwest::Client::new(),
        base: portal.base.clone(),
    };
    assert_eq!(forged.get_config(None).await.0, 403);

    // Deleting the node ends its credential.
    admin
        .call(
            "delete_node",
            &[("name", "edge1"), ("confirm_name", "edge1")],
        )
        .await
        .expect("delete");
    let (status, _, body) = agent.get_config(None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Register the agent"));
}

async fn counters_never_go_backwards(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let agent = registered_node(&portal, &admin, "edge1", "203.0.113.10").await;
    let hits = |d: &Value| d["totals"]["hit_bytes"].as_i64().unwrap();

    agent.report(report("boot-a", 1, 100, 0)).await;
    agent.report(report("boot-a", 2, 250, 0)).await;
    assert_eq!(hits(&node(&admin, "edge1").await), 250);
    // A lost report: the next one carries the sum, nothing is lost.
    agent.report(report("boot-a", 4, 700, 0)).await;
    assert_eq!(hits(&node(&admin, "edge1").await), 700);
    // The agent restarted: its counters start again from zero.
    agent.report(report("boot-b", 1, 40, 0)).await;
    assert_eq!(hits(&node(&admin, "edge1").await), 740);
    // The same report twice (a retry after a lost answer) adds nothing.
    agent.report(report("boot-b", 1, 40, 0)).await;
    assert_eq!(hits(&node(&admin, "edge1").await), 740);
    // Values that went down with the same boot id can only be a restart.
    agent.report(report("boot-b", 1, 10, 0)).await;
    assert_eq!(hits(&node(&admin, "edge1").await), 750);
}

async fn broken_agent_reports_are_refused_whole(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let agent = registered_node(&portal, &admin, "edge1", "203.0.113.10").await;
    agent.report(report("boot-a", 1, 100, 0)).await;

    let mut bad_route = report("boot-a", 9, 900, 0);
    bad_route["bgp"] = json!({
        "sessions": [],
        "routes": {"version": 1, "base": null, "withdrawn": [], "announced": [
            {"prefix": "10.0.0.0/24", "neighbor": "192.0.2.1", "next_hop": "192.0.2.1", "as_path": [65000]},
            {"prefix": "10.0.1.7/24", "neighbor": "192.0.2.1", "next_hop": "192.0.2.1", "as_path": [65000]}
        ]}
    });
    let mut ipv6_neighbor = report("boot-a", 9, 900, 0);
    ipv6_neighbor["bgp"] = json!({"sessions": [{"neighbor": "2001:db8::1", "asn": 65000,
        "state": "Established", "established_at_ms": null, "last_error": null, "prefixes": 0}],
        "routes": null});
    let mut no_boot = report("", 9, 900, 0);
    no_boot["boot_id"] = json!("");
    let mut control_chars = report("boot-a", 9, 900, 0);
    control_chars["problems"] = json!(["drive\u{0007} bell"]);
    let mut huge = report("boot-a", 9, 900, 0);
    huge["counters"]["hit_bytes"] = json!(u64::MAX);
    let cases = [
        (bad_route, "10.0.1.7/24 has host bits set"),
        (ipv6_neighbor, "is not an IPv4 address"),
        (no_boot, "no boot id"),
        (control_chars, "printable"),
        (huge, "out of range"),
        (json!({"boot_id": "x"}), "not what this call takes"),
    ];
    for (body, expected) in cases {
        let (status, answer) = agent.report(body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], "invalid");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    let raw = reqwest::Client::new()
        .post(format!("{}{}", portal.base, lastmile_wire::REPORT_PATH))
        .bearer_auth(&agent.credential)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // Nothing of the refused reports was kept.
    let detail = node(&admin, "edge1").await;
    assert_eq!(detail["totals"]["hit_bytes"], 100);
    assert_eq!(detail["learned"]["prefixes"], 0);
    assert_eq!(detail["health"]["problems"], json!([]));
}

async fn steer(portal: &TestPortal, client: &str) -> Value {
    let res = reqwest::get(format!("{}/api/v1/steer?client={client}", portal.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Steering is eventually consistent (the index refreshes every second, at
/// once after a change in this process): poll until `check` holds.
async fn steer_until(portal: &TestPortal, client: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = steer(portal, client).await;
        if check(&answer) {
            return answer;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("steering for {client} never satisfied the check; last answer {answer}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn first_node(answer: &Value) -> &str {
    answer["nodes"][0]["name"].as_str().unwrap_or("CDN")
}

async fn set_prefixes(admin: &Client, name: &str, prefixes: &str) {
    admin
        .call(
            "save_manual_routing",
            &[("name", name), ("prefixes", prefixes)],
        )
        .await
        .expect("save prefixes");
}

async fn steering_follows_specificity_health_and_draining(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal_with(
        &test_db,
        PortalOptions {
            report_interval_secs: 1,
            ..Default::default()
        },
    )
    .await;
    let wide = registered_node(&portal, &admin, "wide", "203.0.113.1").await;
    let narrow = registered_node(&portal, &admin, "narrow", "203.0.113.2").await;
    let twin = registered_node(&portal, &admin, "twin", "203.0.113.3").await;
    set_prefixes(&admin, "wide", "10.0.0.0/8").await;
    set_prefixes(&admin, "narrow", "10.1.0.0/16").await;
    set_prefixes(&admin, "twin", "10.1.0.0/16").await;

    // Registered but never reported: not serving yet, so the CDN.
    let answer = steer_until(&portal, "10.1.2.3", |a| a["use_cdn"] == true).await;
    assert_eq!(answer["nodes"], json!([]));

    // Keep all three reporting in the background, as live agents do.
    let keep_reporting = |agent: AgentClient, boot: &'static str| {
        tokio::spawn(async move {
            loop {
                agent.report(report(boot, 0, 0, 0)).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let wide_task = keep_reporting(wide, "w");
    let narrow_task = keep_reporting(narrow, "n");
    let twin_task = keep_reporting(twin, "t");

    // The most specific prefix wins, and its two nodes share the clients,
    // each client staying with its node.
    let answer = steer_until(&portal, "10.1.2.3", |a| {
        a["nodes"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(answer["prefix"], "10.1.0.0/16");
    assert_eq!(answer["source"], "manual");
    assert_eq!(answer["use_cdn"], false);
    assert!(answer["nodes"][0]["url"]
        .as_str()
        .unwrap()
        .ends_with(":8080"));
    let mut seen = std::collections::HashMap::new();
    for i in 0..200 {
        let client = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        let answer = steer(&portal, &client).await;
        let again = steer(&portal, &client).await;
        assert_eq!(first_node(&answer), first_node(&again), "{client} moved");
        *seen.entry(first_node(&answer).to_string()).or_insert(0) += 1;
    }
    assert!(seen["narrow"] > 60 && seen["twin"] > 60, "{seen:?}");
    // Outside the /16, the /8.
    assert_eq!(first_node(&steer(&portal, "10.200.0.1").await), "wide");
    // No prefix at all: the CDN.
    assert_eq!(steer(&portal, "192.0.2.1").await["use_cdn"], true);

    // Draining and disabled nodes take no new clients.
    admin
        .call(
            "set_node_draining",
            &[("name", "narrow"), ("draining", "true")],
        )
        .await
        .unwrap();
    admin
        .call(
            "set_node_enabled",
            &[("name", "twin"), ("enabled", "false")],
        )
        .await
        .unwrap();
    let answer = steer_until(&portal, "10.1.2.3", |a| first_node(a) == "wide").await;
    assert_eq!(answer["prefix"], "10.0.0.0/8");
    admin
        .call(
            "set_node_draining",
            &[("name", "narrow"), ("draining", "false")],
        )
        .await
        .unwrap();
    steer_until(&portal, "10.1.2.3", |a| first_node(a) == "narrow").await;

    // A node that stops reporting drops out (offline after three 1 s
    // intervals), and with nothing left the client goes to the CDN.
    narrow_task.abort();
    steer_until(&portal, "10.1.2.3", |a| first_node(a) == "wide").await;
    wide_task.abort();
    twin_task.abort();
    steer_until(&portal, "10.1.2.3", |a| a["use_cdn"] == true).await;

    // Bad input is answered clearly.
    for (client, expected) in [
        ("2001:db8::1", "IPv6 is not supported yet"),
        ("10.1.2", "not an IPv4 address"),
    ] {
        let res = reqwest::get(format!("{}/api/v1/steer?client={client}", portal.base))
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{body}"
        );
    }
}

async fn steering_uses_learned_routes_and_their_deltas(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let manual = registered_node(&portal, &admin, "manual1", "203.0.113.1").await;
    let bgp = registered_node(&portal, &admin, "bgp1", "203.0.113.2").await;
    set_prefixes(&admin, "manual1", "10.0.0.0/8").await;
    admin
        .call(
            "save_bgp",
            &[
                ("name", "bgp1"),
                ("asn", "65001"),
                ("neighbors", "192.0.2.1 65000"),
            ],
        )
        .await
        .unwrap();
    admin
        .call("set_routing_mode", &[("name", "bgp1"), ("mode", "bgp")])
        .await
        .unwrap();
    let (_, _, config) = bgp.get_config(None).await;
    assert_eq!(
        config["routing"],
        json!({"mode": "bgp", "asn": 65001,
        "neighbors": [{"address": "192.0.2.1", "asn": 65000}]})
    );

    let route = |prefix: &str| json!({"prefix": prefix, "neighbor": "192.0.2.1", "next_hop": "192.0.2.1", "as_path": [65000, 64999]});
    let with_routes = |routes: Value| {
        let mut r = report("b", 0, 0, 0);
        r["bgp"] = json!({"sessions": [{"neighbor": "192.0.2.1", "asn": 65000, "state": "Established",
            "established_at_ms": 1, "last_error": null, "prefixes": 2}], "routes": routes});
        r
    };
    manual.report(report("m", 0, 0, 0)).await;
    let (status, body) = bgp
        .report(with_routes(
            json!({"version": 11, "base": null, "withdrawn": [],
            "announced": [route("10.5.0.0/16"), route("10.6.0.0/16")]}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["send_full_routes"], false);
    // The learned /16 beats the typed /8 of another node.
    let answer = steer_until(&portal, "10.5.1.1", |a| first_node(a) == "bgp1").await;
    assert_eq!(answer["source"], "bgp");
    assert_eq!(answer["prefix"], "10.5.0.0/16");
    let detail = node(&admin, "bgp1").await;
    assert_eq!(detail["learned"]["prefixes"], 2);
    assert_eq!(detail["learned"]["addresses"], 2 * 65536);
    assert_eq!(detail["health"]["bgp_sessions"][0]["state"], "Established");

    // A delta from the confirmed version: 10.5/16 withdrawn.
    let (_, body) = bgp
        .report(with_routes(json!({"version": 12, "base": 11,
            "withdrawn": [{"prefix": "10.5.0.0/16", "neighbor": "192.0.2.1"}], "announced": []})))
        .await;
    assert_eq!(body["send_full_routes"], false);
    steer_until(&portal, "10.5.1.1", |a| first_node(a) == "manual1").await;
    assert_eq!(first_node(&steer(&portal, "10.6.1.1").await), "bgp1");

    // A delta from a version the portal does not hold is refused: the
    // agent must send the whole table.
    let (_, body) = bgp
        .report(with_routes(json!({"version": 14, "base": 13, "withdrawn": [], "announced": [route("10.7.0.0/16")]})))
        .await;
    assert_eq!(body["send_full_routes"], true);
    assert_eq!(node(&admin, "bgp1").await["learned"]["prefixes"], 1);

    // The JSON download of what was learned.
    let api = Api::for_client(&admin).await;
    let (status, routes) = api.get("/api/v1/nodes/bgp1/bgp/routes").await;
    assert_eq!(status, 200);
    assert_eq!(routes[0]["prefix"], "10.6.0.0/16");
    assert_eq!(routes[0]["as_path"], json!([65000, 64999]));

    // Back to manual: the learned routes are forgotten.
    admin
        .call("set_routing_mode", &[("name", "bgp1"), ("mode", "manual")])
        .await
        .unwrap();
    steer_until(&portal, "10.6.1.1", |a| first_node(a) == "manual1").await;
    assert_eq!(node(&admin, "bgp1").await["learned"]["prefixes"], 0);
}

async fn operators_see_why_a_subscriber_goes_where_it_goes(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let a = registered_node(&portal, &admin, "alpha", "203.0.113.1").await;
    registered_node(&portal, &admin, "beta", "203.0.113.2").await;
    let c = registered_node(&portal, &admin, "gamma", "203.0.113.3").await;
    create_node(&admin, "delta", "203.0.113.4").await.unwrap();
    set_prefixes(&admin, "alpha", "10.1.0.0/16").await;
    set_prefixes(&admin, "beta", "10.1.0.0/16").await;
    set_prefixes(&admin, "gamma", "10.0.0.0/8").await;
    a.report(report("a", 0, 0, 0)).await;
    c.report(report("c", 0, 0, 0)).await;
    steer_until(&portal, "10.1.9.9", |x| first_node(x) == "alpha").await;
    // Health is reloaded every second: wait until gamma's report is in it
    // too, not only alpha's.
    steer_until(&portal, "10.200.0.1", |x| first_node(x) == "gamma").await;

    let explained = admin
        .call("explain_steering", &[("client", "10.1.9.9")])
        .await
        .expect("explain");
    assert_eq!(explained["chosen"], "alpha");
    assert_eq!(explained["prefix"], "10.1.0.0/16");
    let verdict = |name: &str| {
        explained["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["node"] == name)
            .unwrap_or_else(|| panic!("{name} not listed in {explained}"))["verdict"]
            .clone()
    };
    assert_eq!(verdict("alpha"), "chosen");
    // Registered, but no report yet: it has not said it can serve.
    assert_eq!(verdict("beta"), "not_serving");
    assert_eq!(verdict("gamma"), "less_specific");
    assert_eq!(verdict("delta"), "no_matching_prefix");

    // The same through the API with a token; another organization's token
    // sees none of these nodes.
    let api = Api::for_client(&admin).await;
    let (status, body) = api.get("/api/v1/steer/explain?client=10.1.9.9").await;
    assert_eq!(status, 200);
    assert_eq!(body["chosen"], "alpha");
    let other = second_org_admin(&portal, "other", "other admin pw 1").await;
    let other_api = Api::for_client(&other).await;
    let (_, body) = other_api.get("/api/v1/steer/explain?client=10.1.9.9").await;
    assert_eq!(body["chosen"], Value::Null);
    assert_eq!(body["served_by_other_org"], true);
    assert_eq!(body["candidates"], json!([]));

    // The redirect form, for simple clients.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = "http://dl.delivery.mp.microsoft.com/filestreamingservice/files/x.cab?P1=2";
    let res = no_redirects
        .get(format!("{}/api/v1/steer/redirect", portal.base))
        .query(&[("url", url), ("client", "10.1.9.9")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(
        res.headers()["location"],
        "http://203.0.113.1:8080/filestreamingservice/files/x.cab?P1=2&cacheHostOrigin=dl.delivery.mp.microsoft.com"
    );
    // A host the node does not cache, and a client no node serves, go to
    // the origin as asked.
    for (url, client) in [
        ("http://unlisted.example/x", "10.1.9.9"),
        (url, "192.0.2.1"),
    ] {
        let res = no_redirects
            .get(format!("{}/api/v1/steer/redirect", portal.base))
            .query(&[("url", url), ("client", client)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(res.headers()["location"], url);
    }
}
