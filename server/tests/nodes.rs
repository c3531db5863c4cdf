//! Nodes, routing, provisioning and the JSON API over real HTTP, on SQLite
//! and PostgreSQL.

mod common;

use app::error::AppError;
use common::*;
use serde_json::{json, Value};

on_both_backends!(
    nodes_are_validated_created_and_listed,
    manual_routing_is_all_or_nothing,
    bgp_settings_and_the_routing_mode,
    registration_keys_work_once_and_expire,
    the_json_api_does_what_the_portal_does,
    organizations_cannot_see_each_others_nodes,
    broken_agent_requests_get_clear_errors,
);

fn message(result: Result<Value, (u16, AppError)>) -> (u16, String) {
    match result {
        Err((status, e)) => (status, e.to_string()),
        Ok(v) => panic!("expected an error, got {v}"),
    }
}

async fn node(client: &Client, name: &str) -> Value {
    client
        .call("node", &[("name", name)])
        .await
        .expect("node detail")
}

async fn nodes_are_validated_created_and_listed(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    create_node(&admin, "edge01", "203.0.113.10").await.unwrap();

    let detail = node(&admin, "edge01").await;
    assert_eq!(detail["public_ipv4"], "203.0.113.10");
    assert_eq!(
        detail["drives"],
        json!([{"path": "/var/cache/lastmile1", "size_gb": 500}, {"path": "/var/cache/lastmile2", "size_gb": 250}])
    );
    assert_eq!(detail["state"], "never_connected");
    assert_eq!(detail["config_state"], "pending");
    assert_eq!(detail["routing_mode"], "manual");
    assert_eq!(detail["agent_version"], Value::Null);

    let (status, msg) = message(create_node(&admin, "EDGE01", "203.0.113.11").await);
    assert_eq!(status, 409);
    assert!(msg.contains("already exists"), "{msg}");
    let (status, msg) = message(create_node(&admin, "edge02", "2001:db8::10").await);
    assert_eq!(status, 400);
    assert!(msg.contains("IPv6 is not supported yet"), "{msg}");
    let (_, msg) = message(create_node(&admin, "edge-02", "203.0.113.12").await);
    assert!(msg.contains("only letters and digits"), "{msg}");
    let no_drives = admin
        .call(
            "create_node",
            &[
                ("name", "edge03"),
                ("public_ipv4", "203.0.113.13"),
                ("max_egress_mbps", "100"),
                ("drives", ""),
            ],
        )
        .await;
    assert!(message(no_drives).1.contains("at least one cache drive"));
    let bad_egress = admin
        .call(
            "create_node",
            &[
                ("name", "edge03"),
                ("public_ipv4", "203.0.113.13"),
                ("max_egress_mbps", "lots"),
                ("drives", "/c 1"),
            ],
        )
        .await;
    assert!(message(bad_egress).1.contains("not a whole number of Mbps"));
    let list = admin.call("nodes", &[]).await.unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "nothing half-made: {list}"
    );

    // Editing keeps the name, bumps the configuration version.
    admin
        .call(
            "update_node",
            &[
                ("name", "edge01"),
                ("public_ipv4", "203.0.113.20"),
                ("max_egress_mbps", "5000"),
                ("drives", "/srv/cache 1000"),
            ],
        )
        .await
        .unwrap();
    let edited = node(&admin, "edge01").await;
    assert_eq!(edited["public_ipv4"], "203.0.113.20");
    assert_eq!(edited["enabled"], false, "an unticked checkbox disables");
    assert_eq!(edited["state"], "disabled");
    assert!(edited["config_version"].as_i64() > detail["config_version"].as_i64());
    admin
        .call(
            "set_node_enabled",
            &[("name", "edge01"), ("enabled", "true")],
        )
        .await
        .unwrap();
    assert_eq!(node(&admin, "edge01").await["enabled"], true);

    // Viewers see nodes and change none.
    let viewer = admin.add_ready_person(&portal, "vera", "viewer").await;
    assert_eq!(
        viewer
            .call("nodes", &[])
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for (endpoint, form) in [
        (
            "create_node",
            vec![
                ("name", "x1"),
                ("public_ipv4", "203.0.113.30"),
                ("max_egress_mbps", "10"),
                ("drives", "/c 1"),
            ],
        ),
        (
            "set_node_enabled",
            vec![("name", "edge01"), ("enabled", "false")],
        ),
        (
            "save_manual_routing",
            vec![("name", "edge01"), ("prefixes", "198.51.100.0/24")],
        ),
        ("issue_registration_key", vec![("name", "edge01")]),
        (
            "delete_node",
            vec![("name", "edge01"), ("confirm_name", "edge01")],
        ),
    ] {
        assert!(
            matches!(
                viewer.call(endpoint, &form).await,
                Err((403, AppError::Forbidden(_)))
            ),
            "viewer {endpoint}"
        );
    }

    // Deleting asks for the name.
    let (status, _) = message(
        admin
            .call(
                "delete_node",
                &[("name", "edge01"), ("confirm_name", "edge1")],
            )
            .await,
    );
    assert_eq!(status, 400);
    admin
        .call(
            "delete_node",
            &[("name", "edge01"), ("confirm_name", "edge01")],
        )
        .await
        .unwrap();
    assert_eq!(admin.call("nodes", &[]).await.unwrap(), json!([]));
}

async fn manual_routing_is_all_or_nothing(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    create_node(&admin, "edge01", "203.0.113.10").await.unwrap();
    create_node(&admin, "edge02", "203.0.113.11").await.unwrap();
    let save = |name: &'static str, prefixes: &'static str| {
        let admin = &admin;
        async move {
            admin
                .call(
                    "save_manual_routing",
                    &[("name", name), ("prefixes", prefixes)],
                )
                .await
        }
    };

    save("edge01", "198.51.100.0/24, 192.0.2.0/25\n10.0.0.0/8")
        .await
        .unwrap();
    let (status, msg) =
        message(save("edge01", "198.51.100.0/24\n10.1.2.3/16\n2001:db8::/32\n").await);
    assert_eq!(status, 400);
    assert!(
        msg.contains("Line 2, \"10.1.2.3/16\": host bits are set; the block is 10.1.0.0/16."),
        "{msg}"
    );
    assert!(
        msg.contains("Line 3, \"2001:db8::/32\": IPv6 is not supported yet"),
        "{msg}"
    );
    let prefixes = |v: &Value| -> Vec<String> {
        v["manual_prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["prefix"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        prefixes(&node(&admin, "edge01").await),
        ["10.0.0.0/8", "192.0.2.0/25", "198.51.100.0/24"],
        "unchanged"
    );

    // The same block on two nodes of one organization is shared.
    save("edge02", "198.51.100.0/24").await.unwrap();
    let one = node(&admin, "edge01").await;
    let shared = one["manual_prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prefix"] == "198.51.100.0/24")
        .unwrap();
    assert_eq!(shared["shared_with"], json!(["edge02"]));

    // Another organization cannot claim an overlapping block.
    let bob = second_org_admin(&portal, "bob", "second admin pw").await;
    create_node(&bob, "edge01", "198.18.0.1").await.unwrap();
    let clash = bob
        .call(
            "save_manual_routing",
            &[
                ("name", "edge01"),
                ("prefixes", "172.16.0.0/12\n10.20.0.0/16"),
            ],
        )
        .await;
    let (status, msg) = message(clash);
    assert_eq!(status, 409);
    assert!(
        msg.contains(
            "Line 2, \"10.20.0.0/16\": overlaps a block that another organization serves."
        ),
        "{msg}"
    );
    assert!(!msg.contains("172.16.0.0/12"), "{msg}");
    assert_eq!(
        prefixes(&node(&bob, "edge01").await),
        Vec::<String>::new(),
        "nothing saved"
    );
    bob.call(
        "save_manual_routing",
        &[("name", "edge01"), ("prefixes", "172.16.0.0/12")],
    )
    .await
    .unwrap();
    // Clearing the list is allowed.
    save("edge02", "").await.unwrap();
    assert_eq!(
        prefixes(&node(&admin, "edge02").await),
        Vec::<String>::new()
    );
}

async fn bgp_settings_and_the_routing_mode(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (_portal, admin) = set_up_portal(&test_db).await;
    create_node(&admin, "edge01", "203.0.113.10").await.unwrap();
    let before = node(&admin, "edge01").await["config_version"]
        .as_i64()
        .unwrap();

    let (status, msg) = message(
        admin
            .call("set_routing_mode", &[("name", "edge01"), ("mode", "bgp")])
            .await,
    );
    assert_eq!(status, 400);
    assert!(msg.contains("ASN and at least one BGP neighbor"), "{msg}");
    let (_, msg) = message(
        admin
            .call(
                "save_bgp",
                &[
                    ("name", "edge01"),
                    ("asn", "4200000000"),
                    ("neighbors", "2001:db8::1 65001"),
                ],
            )
            .await,
    );
    assert!(msg.contains("IPv6 is not supported yet"), "{msg}");
    let (_, msg) = message(
        admin
            .call(
                "save_bgp",
                &[
                    ("name", "edge01"),
                    ("asn", "23456"),
                    ("neighbors", "192.0.2.1 65001"),
                ],
            )
            .await,
    );
    assert!(msg.contains("reserved"), "{msg}");

    admin
        .call(
            "save_bgp",
            &[
                ("name", "edge01"),
                ("asn", "4200000000"),
                ("neighbors", "192.0.2.1 65001\n192.0.2.2 4200000001"),
            ],
        )
        .await
        .unwrap();
    admin
        .call("set_routing_mode", &[("name", "edge01"), ("mode", "bgp")])
        .await
        .unwrap();
    let detail = node(&admin, "edge01").await;
    assert_eq!(detail["routing_mode"], "bgp");
    assert_eq!(detail["bgp_asn"], 4_200_000_000u32);
    assert_eq!(
        detail["bgp_neighbors"],
        json!([{"address": "192.0.2.1", "asn": 65001}, {"address": "192.0.2.2", "asn": 4200000001u32}])
    );
    assert!(detail["config_version"].as_i64().unwrap() > before);
    admin
        .call(
            "set_routing_mode",
            &[("name", "edge01"), ("mode", "manual")],
        )
        .await
        .unwrap();
    let back = node(&admin, "edge01").await;
    assert_eq!(back["routing_mode"], "manual");
    assert_eq!(
        back["bgp_asn"], 4_200_000_000u32,
        "switching back keeps the BGP settings"
    );
}

async fn registration_keys_work_once_and_expire(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal_with(
        &test_db,
        PortalOptions {
            tls: Tls::SelfSigned,
            ..Default::default()
        },
    )
    .await;
    create_node(&admin, "edge01", "203.0.113.10").await.unwrap();
    let operator = admin.add_ready_person(&portal, "otto", "operator").await;

    let first = operator
        .call("issue_registration_key", &[("name", "edge01")])
        .await
        .unwrap();
    let first_key = first["key"].as_str().unwrap().to_string();
    let command = first["install_command"].as_str().unwrap();
    assert!(
        command.contains(&format!("{}/install.sh", portal.base)),
        "{command}"
    );
    assert!(
        command.contains("--pinnedpubkey 'sha256//"),
        "a self-signed portal is pinned: {command}"
    );
    assert!(
        command.contains("--preserve-env=LASTMILE_REGISTRATION_KEY"),
        "{command}"
    );
    let status = node(&admin, "edge01").await;
    assert_eq!(status["registration_key"]["created_by"], "otto");
    assert_eq!(status["registration_key"]["used_at_ms"], Value::Null);
    assert!(
        !status.to_string().contains(&first_key),
        "the key is never shown again"
    );

    // A new key revokes the old one.
    let second = operator
        .call("issue_registration_key", &[("name", "edge01")])
        .await
        .unwrap();
    let second_key = second["key"].as_str().unwrap().to_string();
    let (code, err) = register(&portal.base, &first_key).await;
    assert_eq!(
        (code, err["code"].as_str()),
        (400, Some("invalid")),
        "{err}"
    );
    assert_eq!(err["message"], app::backend::nodes::KEY_REFUSED);

    let (code, registered) = register(&portal.base, &second_key).await;
    assert_eq!(code, 200, "{registered}");
    assert_eq!(registered["node_name"], "edge01");
    assert_eq!(registered["org_name"], "First ISP");
    let credential = registered["credential"].as_str().unwrap();
    assert!(credential.starts_with("lmn_") && credential.len() > 60);
    // Only the hash is stored.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT credential_hash FROM nodes WHERE name = 'edge01'")
            .fetch_one(&portal.db.pool)
            .await
            .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(app::backend::secrets::hash(credential).as_str())
    );

    // Works once.
    assert_eq!(register(&portal.base, &second_key).await.0, 400);
    let detail = node(&admin, "edge01").await;
    assert_eq!(detail["state"], "online");
    assert_eq!(detail["agent_version"], "0.1.0");
    assert_eq!(detail["agent_hostname"], "cache1.isp.example");
    assert!(detail["registration_key"]["used_at_ms"].is_i64());

    // An expired key is refused.
    let third = operator
        .call("issue_registration_key", &[("name", "edge01")])
        .await
        .unwrap();
    sqlx::query(
        "UPDATE registration_keys SET expires_at = 0 WHERE used_at IS NULL AND revoked_at IS NULL",
    )
    .execute(&portal.db.pool)
    .await
    .unwrap();
    assert_eq!(
        register(&portal.base, third["key"].as_str().unwrap())
            .await
            .0,
        400
    );

    let log = admin.call("audit_log", &[]).await.unwrap().to_string();
    assert!(
        log.contains("node.key") && log.contains("node.register"),
        "{log}"
    );
    assert!(!log.contains(&second_key), "keys never reach the audit log");
}

async fn the_json_api_does_what_the_portal_does(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let api = Api::for_client(&admin).await;

    let (status, created) = api
        .post(
            "/api/v1/nodes",
            json!({"name": "edge01", "public_ipv4": "203.0.113.10", "max_egress_mbps": 2000,
                   "drives": [{"path": "/srv/a", "size_gb": 100}, {"path": "/srv/b", "size_gb": 200}]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "never_connected");
    assert_eq!(
        api.get("/api/v1/nodes").await.1.as_array().unwrap().len(),
        1
    );

    let (status, err) = api
        .post("/api/v1/nodes", json!({"name": "edge02", "public_ipv4": "::1", "max_egress_mbps": 1, "drives": [{"path": "/a", "size_gb": 1}]}))
        .await;
    assert_eq!((status, err["code"].as_str()), (400, Some("invalid")));
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("IPv6 is not supported yet"),
        "{err}"
    );
    let (status, err) = api
        .post("/api/v1/nodes", json!({"name": "edge01", "colour": "red"}))
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid")),
        "unknown fields are refused: {err}"
    );
    let (status, err) = api.send(reqwest::Method::POST, "/api/v1/nodes", None).await;
    assert_eq!(status, 400, "{err}");

    let (status, patched) = api
        .patch(
            "/api/v1/nodes/EDGE01",
            json!({"max_egress_mbps": 3000, "enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["max_egress_mbps"], 3000);
    assert_eq!(
        patched["drives"].as_array().unwrap().len(),
        2,
        "drives kept"
    );

    let (status, err) = api
        .put(
            "/api/v1/nodes/edge01/routing/manual",
            json!({"prefixes": ["198.51.100.0/24", "198.51.100.7/24"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Line 2, \"198.51.100.7/24\""),
        "{err}"
    );
    let (status, routed) = api
        .put(
            "/api/v1/nodes/edge01/routing/manual",
            json!({"prefixes": ["198.51.100.0/24"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(routed["manual_prefixes"][0]["prefix"], "198.51.100.0/24");
    let (status, _) = api
        .put(
            "/api/v1/nodes/edge01/routing/bgp",
            json!({"asn": 64512, "neighbors": [{"address": "192.0.2.1", "asn": 4200000001u32}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, moded) = api
        .put("/api/v1/nodes/edge01/routing/mode", json!({"mode": "bgp"}))
        .await;
    assert_eq!((status, moded["routing_mode"].as_str()), (200, Some("bgp")));
    let (status, issued) = api
        .post("/api/v1/nodes/edge01/registration-key", json!({}))
        .await;
    assert_eq!(status, 201);
    assert!(issued["key"].as_str().unwrap().starts_with("lmk_"));
    assert_eq!(
        register(&portal.base, issued["key"].as_str().unwrap())
            .await
            .0,
        200
    );

    // Roles apply to tokens.
    let viewer = admin.add_ready_person(&portal, "vera", "viewer").await;
    let viewer_api = Api::for_client(&viewer).await;
    assert_eq!(viewer_api.get("/api/v1/nodes/edge01").await.0, 200);
    let (status, err) = viewer_api.delete("/api/v1/nodes/edge01").await;
    assert_eq!((status, err["code"].as_str()), (403, Some("forbidden")));

    // No token, a wrong token, a revoked token.
    let anonymous = reqwest::Client::new()
        .get(format!("{}/api/v1/nodes", portal.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    let wrong = Api {
        token: "lmt_0000".into(),
        ..Api::for_client(&admin).await
    };
    assert_eq!(wrong.get("/api/v1/nodes").await.0, 401);
    let tokens = viewer.call("api_tokens", &[]).await.unwrap();
    let id = tokens[0]["id"].to_string();
    viewer
        .call("revoke_api_token", &[("id", &id)])
        .await
        .unwrap();
    assert_eq!(viewer_api.get("/api/v1/nodes").await.0, 401);

    assert_eq!(api.delete("/api/v1/nodes/edge01").await.0, 204);
    assert_eq!(api.get("/api/v1/nodes/edge01").await.0, 404);

    let spec: Value = reqwest::get(format!("{}/api/v1/openapi.json", portal.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/api/v1/nodes",
        "/api/v1/nodes/{name}",
        "/api/v1/nodes/{name}/routing/manual",
        "/api/v1/nodes/{name}/routing/bgp",
        "/api/v1/nodes/{name}/routing/mode",
        "/api/v1/nodes/{name}/draining",
        "/api/v1/nodes/{name}/bgp/routes",
        "/api/v1/nodes/{name}/registration-key",
        "/api/v1/steer",
        "/api/v1/steer/redirect",
        "/api/v1/steer/explain",
        "/api/v1/agent/register",
        "/api/v1/agent/config",
        "/api/v1/agent/applied",
        "/api/v1/agent/report",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
}

async fn organizations_cannot_see_each_others_nodes(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    create_node(&admin, "edge01", "203.0.113.10").await.unwrap();
    let bob = second_org_admin(&portal, "bob", "second admin pw").await;
    let bob_api = Api::for_client(&bob).await;

    assert_eq!(bob_api.get("/api/v1/nodes").await.1, json!([]));
    for (method, path, body) in [
        (reqwest::Method::GET, "/api/v1/nodes/edge01", None),
        (
            reqwest::Method::PATCH,
            "/api/v1/nodes/edge01",
            Some(json!({"enabled": false})),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/nodes/edge01/routing/manual",
            Some(json!({"prefixes": ["192.0.2.0/24"]})),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/nodes/edge01/routing/mode",
            Some(json!({"mode": "manual"})),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/nodes/edge01/registration-key",
            Some(json!({})),
        ),
        (reqwest::Method::DELETE, "/api/v1/nodes/edge01", None),
    ] {
        let (status, err) = bob_api.send(method.clone(), path, body).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }
    assert!(matches!(
        bob.call("node", &[("name", "edge01")]).await,
        Err((404, _))
    ));
    // Names are per organization.
    create_node(&bob, "edge01", "198.18.0.1").await.unwrap();
    let mine = node(&admin, "edge01").await;
    assert_eq!(mine["public_ipv4"], "203.0.113.10");
    assert_eq!(mine["enabled"], true);
}

async fn broken_agent_requests_get_clear_errors(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, _admin) = set_up_portal(&test_db).await;
    let http = reqwest::Client::new();
    let url = format!("{}{}", portal.base, lastmile_wire::REGISTER_PATH);
    for body in ["{not json", "{\"key\": 5}", "{}"] {
        let res = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let err: lastmile_wire::ApiError = res.json().await.unwrap();
        assert_eq!(err.code, "invalid");
        assert!(!err.message.is_empty());
    }
    let (status, err) = register(&portal.base, "lmk_made_up").await;
    assert_eq!(
        (status, err["message"].as_str()),
        (400, Some(app::backend::nodes::KEY_REFUSED))
    );
}
