//! Traffic: reports become minute, hour and day series (a lost report and
//! an agent restart included), retention prunes them, and the dashboards,
//! exports, JSON API and metrics read them, each organization only its
//! own. On both databases.

mod common;

use app::backend::agents::{self, AgentNode};
use app::backend::traffic::{
    self, Scope, Tier, TrafficRetention, Window, DAY_MS, HOUR_MS, MINUTE_MS,
};
use app::backend::PortalSettings;
use common::*;
use lastmile_wire::{Counters, FamilyBytes, Report};
use serde_json::{json, Value};

on_both_backends!(
    reports_become_series_that_never_go_negative,
    a_lost_report_is_spread_over_its_time_and_tiers_agree,
    retention_prunes_each_tier_and_keeps_deleted_nodes_history,
    dashboards_render_charts_in_the_viewers_zone,
    exports_in_csv_and_json_for_people_and_tokens_stay_in_their_org,
    metrics_need_the_token_and_api_metrics_stay_in_their_org,
);

/// A node registered the way an agent does it, and who it is to the
/// portal.
async fn registered(portal: &TestPortal, admin: &Client, name: &str) -> (String, AgentNode) {
    create_node(admin, name, "203.0.113.10")
        .await
        .expect("create node");
    let issued = admin
        .call("issue_registration_key", &[("name", name)])
        .await
        .expect("issue key");
    let (status, body) = register(&portal.base, issued["key"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let credential = body["credential"].as_str().unwrap().to_string();
    let node = agents::authenticate(&portal.db, &credential)
        .await
        .unwrap()
        .unwrap();
    (credential, node)
}

/// A report with cumulative counters: `hit` and `miss` bytes, all of it
/// Windows Update except `office` bytes of the hits.
fn report(boot: &str, requests: u64, hit: u64, miss: u64, office: u64) -> Report {
    Report {
        boot_id: boot.into(),
        agent_version: "0.1.0".into(),
        data_port: 8080,
        counters: Counters {
            requests,
            hit_bytes: hit,
            miss_bytes: miss,
            origin_bytes: miss,
            errors: 0,
            families: FamilyBytes {
                windows_update: hit + miss - office,
                office,
                ..FamilyBytes::default()
            },
        },
        active_connections: 2,
        drives: vec![],
        serving: true,
        problems: vec![],
        bgp: None,
    }
}

/// Records `report` as though it arrived at `at_ms` (reports from the past,
/// as after a portal outage), with the default retention settings.
async fn record(portal: &TestPortal, node: &AgentNode, report: &Report, at_ms: i64) {
    agents::record_report_at(&portal.db, node, report, &PortalSettings::default(), at_ms)
        .await
        .unwrap();
}

/// Sends a report over HTTP as the agent does.
async fn send(portal: &TestPortal, credential: &str, report: &Report) {
    let res = reqwest::Client::new()
        .post(format!("{}{}", portal.base, lastmile_wire::REPORT_PATH))
        .bearer_auth(credential)
        .json(report)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// The scope's counts per bucket of `tier` in `[start, end)`.
async fn buckets(
    portal: &TestPortal,
    scope: Scope,
    tier: Tier,
    start: i64,
    end: i64,
) -> Vec<(i64, app::traffic::TrafficCounts)> {
    let window = Window {
        preset: None,
        tier,
        start_ms: start,
        end_ms: end,
        step_ms: tier.width_ms(),
    };
    let slots = traffic::slot_counts(&portal.db, scope, &window)
        .await
        .unwrap();
    let mut rows: Vec<_> = slots
        .into_iter()
        .map(|(slot, counts)| (start + slot * tier.width_ms(), counts))
        .collect();
    rows.sort_by_key(|(at, _)| *at);
    rows
}

fn sum(rows: &[(i64, app::traffic::TrafficCounts)]) -> app::traffic::TrafficCounts {
    let mut total = app::traffic::TrafficCounts::default();
    for (_, c) in rows {
        total.add(c);
    }
    total
}

async fn reports_become_series_that_never_go_negative(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let (credential, node) = registered(&portal, &admin, "edge1").await;

    // Over real HTTP: a report, a bigger one, then a restart whose counters
    // start again from zero.
    send(
        &portal,
        &credential,
        &report("boot-a", 10, 5_000, 1_000, 500),
    )
    .await;
    send(
        &portal,
        &credential,
        &report("boot-a", 30, 15_000, 3_000, 1_500),
    )
    .await;
    send(&portal, &credential, &report("boot-b", 2, 400, 100, 0)).await;

    let now = app::backend::db::now_ms();
    let rows = buckets(
        &portal,
        Scope::Node(node.id),
        Tier::Minute,
        now - HOUR_MS,
        now + MINUTE_MS,
    )
    .await;
    assert!(!rows.is_empty());
    for (_, c) in &rows {
        for v in [
            c.requests,
            c.hit_bytes,
            c.miss_bytes,
            c.origin_bytes,
            c.families.windows_update,
            c.families.office,
        ] {
            assert!(v >= 0, "never negative: {rows:?}");
        }
    }
    let total = sum(&rows);
    // 15 000 + 400 hit bytes: the restart adds its own counters, not the
    // difference (which would be negative).
    assert_eq!(total.hit_bytes, 15_400);
    assert_eq!(total.miss_bytes, 3_100);
    assert_eq!(total.requests, 32);
    assert_eq!(total.families.office, 1_500);
    assert_eq!(total.families.windows_update, 15_400 + 3_100 - 1_500);
    // The series agree with the node's totals…
    let detail = admin.call("node", &[("name", "edge1")]).await.unwrap();
    assert_eq!(detail["totals"]["hit_bytes"], 15_400);
    // …and with the fleet's, in every tier.
    for tier in Tier::ALL {
        let fleet = buckets(
            &portal,
            Scope::Org(node.org_id),
            tier,
            now - 2 * DAY_MS,
            now + DAY_MS,
        )
        .await;
        assert_eq!(sum(&fleet), total, "{tier:?}");
    }

    // The dashboard's data through the server function the pages call.
    let fleet = admin.call("traffic", &[("range", "1h")]).await.unwrap();
    assert_eq!(fleet["summary"]["counts"]["hit_bytes"], 15_400);
    assert_eq!(fleet["range"]["step_ms"], MINUTE_MS);
    let efficiency = fleet["summary"]["efficiency"].as_f64().unwrap();
    assert!((efficiency - 15_400.0 / 18_500.0).abs() < 1e-9);
    let mine = admin
        .call("traffic", &[("node", "edge1"), ("range", "12h")])
        .await
        .unwrap();
    assert_eq!(mine["node"], "edge1");
    assert_eq!(mine["summary"]["counts"]["families"]["office"], 1_500);
    // A retried report (same counters) adds nothing.
    send(&portal, &credential, &report("boot-b", 2, 400, 100, 0)).await;
    let again = admin.call("traffic", &[("range", "1h")]).await.unwrap();
    assert_eq!(again["summary"]["counts"]["hit_bytes"], 15_400);
}

async fn a_lost_report_is_spread_over_its_time_and_tiers_agree(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let (_, node) = registered(&portal, &admin, "edge1").await;
    // Reports every 30 s at 100 bytes a second, starting on an hour four
    // hours ago (the series take reports from the past, as after a portal
    // outage).
    let now = app::backend::db::now_ms();
    let t0 = now - now % HOUR_MS - 4 * HOUR_MS;
    let at = |seconds: i64| t0 + seconds * 1000;
    let cumulative = |seconds: u64| report("boot-a", seconds / 30, seconds * 100, 0, 0);
    for seconds in [0u64, 30, /* 60 is lost */ 90, 120] {
        record(&portal, &node, &cumulative(seconds), at(seconds as i64)).await;
    }
    let rows = buckets(
        &portal,
        Scope::Node(node.id),
        Tier::Minute,
        t0,
        t0 + HOUR_MS,
    )
    .await;
    // No gap of zero and no spike: both minutes got their 6 000 bytes.
    assert_eq!(
        rows.iter()
            .map(|(at, c)| (*at, c.hit_bytes))
            .collect::<Vec<_>>(),
        vec![(t0, 6_000), (t0 + MINUTE_MS, 6_000)]
    );

    // The agent restarts: its first report (counters from zero) lands in
    // the report's own minute, and the next continues from it.
    record(&portal, &node, &report("boot-b", 1, 700, 0, 0), at(150)).await;
    record(&portal, &node, &report("boot-b", 2, 3_700, 0, 0), at(180)).await;
    let rows = buckets(
        &portal,
        Scope::Node(node.id),
        Tier::Minute,
        t0,
        t0 + HOUR_MS,
    )
    .await;
    assert_eq!(rows[2].0, t0 + 2 * MINUTE_MS);
    assert_eq!(rows[2].1.hit_bytes, 3_700);

    // Silence for two and a half hours with the agent still serving (the
    // portal was away): the next report spreads over all of it, across
    // three hours.
    let later = 180 + 150 * 60;
    record(
        &portal,
        &node,
        &report("boot-b", 100, 3_700 + 9_000_000, 0, 0),
        at(later),
    )
    .await;
    let minutes = buckets(
        &portal,
        Scope::Node(node.id),
        Tier::Minute,
        t0,
        now + MINUTE_MS,
    )
    .await;
    assert_eq!(
        minutes.len(),
        3 + 150,
        "every minute of the silence has its share"
    );
    assert!(minutes[3..].iter().all(|(_, c)| c.hit_bytes == 60_000));
    let hours = buckets(
        &portal,
        Scope::Node(node.id),
        Tier::Hour,
        t0 - DAY_MS,
        now + HOUR_MS,
    )
    .await;
    let days = buckets(
        &portal,
        Scope::Node(node.id),
        Tier::Day,
        t0 - 2 * DAY_MS,
        now + DAY_MS,
    )
    .await;
    assert_eq!(hours.len(), 3);
    // The tiers agree to the byte.
    assert_eq!(sum(&minutes), sum(&hours));
    assert_eq!(sum(&hours), sum(&days));
    assert_eq!(sum(&minutes).hit_bytes, 12_000 + 3_700 + 9_000_000);
}

async fn retention_prunes_each_tier_and_keeps_deleted_nodes_history(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let (_, node) = registered(&portal, &admin, "edge1").await;
    let (_, other) = registered(&portal, &admin, "edge2").await;
    let now = app::backend::db::now_ms();
    let day0 = now - now % DAY_MS - 5 * DAY_MS;
    // One report an hour for five days, a megabyte each.
    for hour in 0..=5 * 24 {
        let t = day0 + hour * HOUR_MS;
        let r = report("boot-a", hour as u64, hour as u64 * 1_000_000, 0, 0);
        record(&portal, &node, &r, t).await;
        record(&portal, &other, &r, t).await;
    }
    let count = |tier: Tier| {
        let db = portal.db.clone();
        async move {
            let row: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", tier.table()))
                .fetch_one(&db.pool)
                .await
                .unwrap();
            row
        }
    };
    let before = (
        count(Tier::Minute).await,
        count(Tier::Hour).await,
        count(Tier::Day).await,
    );
    assert_eq!(before.1, 2 * 5 * 24, "an hour row per node and hour");
    assert_eq!(
        before.0,
        2 * 5 * 24 * 60,
        "a minute row per node and minute"
    );

    // Keep minutes for a day, hours for two, days for ever.
    let retention = TrafficRetention {
        minute_ms: DAY_MS,
        hour_ms: 2 * DAY_MS,
        day_ms: 400 * DAY_MS,
    };
    let deleted = traffic::prune(&portal.db, &retention, day0 + 5 * DAY_MS)
        .await
        .unwrap();
    assert!(deleted > 0);
    let after = (
        count(Tier::Minute).await,
        count(Tier::Hour).await,
        count(Tier::Day).await,
    );
    assert_eq!(after.2, before.2, "days are kept");
    assert_eq!(after.1, 2 * 2 * 24, "two days of hours");
    assert_eq!(after.0, 2 * 24 * 60, "one day of minutes");
    let oldest_minute: i64 = sqlx::query_scalar("SELECT MIN(bucket_ms) FROM traffic_minute")
        .fetch_one(&portal.db.pool)
        .await
        .unwrap();
    assert_eq!(oldest_minute, day0 + 4 * DAY_MS);
    // The fleet's series too: one row a minute per shard (the two nodes
    // fall in two of them).
    let fleet_minutes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM traffic_fleet_minute")
        .fetch_one(&portal.db.pool)
        .await
        .unwrap();
    assert_eq!(fleet_minutes, 2 * 24 * 60);

    // A deleted node's traffic stays in its organization's history.
    let fleet_before = sum(&buckets(&portal, Scope::Org(node.org_id), Tier::Day, day0, now).await);
    admin
        .call(
            "delete_node",
            &[("name", "edge2"), ("confirm_name", "edge2")],
        )
        .await
        .unwrap();
    let fleet_after = sum(&buckets(&portal, Scope::Org(node.org_id), Tier::Day, day0, now).await);
    assert_eq!(fleet_after, fleet_before);
    // …but a new node of the same name starts with none of it.
    create_node(&admin, "edge2", "203.0.113.11").await.unwrap();
    let fresh = admin
        .call("traffic", &[("node", "edge2"), ("range", "30d")])
        .await
        .unwrap();
    assert_eq!(fresh["summary"]["counts"]["hit_bytes"], 0);
}

async fn dashboards_render_charts_in_the_viewers_zone(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let (credential, _) = registered(&portal, &admin, "edge1").await;
    send(&portal, &credential, &report("boot-a", 1, 0, 0, 0)).await;
    send(
        &portal,
        &credential,
        &report("boot-a", 9, 3_000_000, 1_000_000, 0),
    )
    .await;

    // A browser: the session cookie and, once the page has run, the
    // time-zone cookie in one jar.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = Client {
        http: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: portal.base.clone(),
    };
    browser.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let base_url: reqwest::Url = portal.base.parse().unwrap();
    // The page as a browser shows it: text and attributes unescaped.
    let page = |path: &'static str, zone: Option<&'static str>| {
        let (browser, jar, base_url) = (&browser, &jar, &base_url);
        async move {
            if let Some(zone) = zone {
                jar.add_cookie_str(&format!("lastmile_tz={zone}; Path=/"), base_url);
            }
            let res = browser.http.get(browser.url(path)).send().await.unwrap();
            let status = res.status().as_u16();
            let html = res.text().await.unwrap();
            let html = html
                .replace("&quot;", "\"")
                .replace("&#34;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&");
            (status, html)
        }
    };
    // The Overview: node health, the numbers, three charts with their
    // exports, in UTC until the browser says otherwise.
    let (status, html) = page("/", None).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-stat="healthy""#), "node health");
    assert!(
        html.contains("75.0 %"),
        "the efficiency: 3 MB of 4 MB from cache"
    );
    assert_eq!(html.matches("<svg ").count(), 3);
    assert!(
        html.contains(r#"href="/traffic.csv?chart=egress&tz=UTC""#),
        "export link"
    );
    assert!(html.contains(r#"<strong class="time-zone">UTC</strong>"#));
    // The zone the browser reported (the cookie) labels the times…
    let (_, tokyo) = page("/?range=7d", Some("Asia/Tokyo")).await;
    assert!(tokyo.contains(r#"<strong class="time-zone">Asia/Tokyo</strong>"#));
    assert!(tokyo.contains("Last 7 days"));
    // …unless the address names one.
    let (_, berlin) = page("/?range=1h&tz=Europe/Berlin", None).await;
    assert!(berlin.contains(r#"<strong class="time-zone">Europe/Berlin</strong>"#));

    // Bad input is answered on the page, with the range picker still there.
    let (status, bad) = page("/?range=2h", None).await;
    assert_eq!(status, 200);
    assert!(bad.contains("Unknown range \"2h\""), "{bad}");
    assert!(bad.contains(r#"aria-label="Time range""#));
    let (_, bad) = page("/?range=custom&from=yesterday", None).await;
    assert!(bad.contains("is not a date and time such as 2026-11-20T14:00"));
    let (_, bad) = page("/?tz=Mars/Base", None).await;
    assert!(bad.contains("Unknown time zone"));

    // The node's page has its own traffic, beside its state and config.
    let (status, node_page) = page("/nodes/edge1?range=12h", None).await;
    assert_eq!(status, 200);
    assert!(node_page.contains("Last 12 hours"));
    assert!(node_page
        .contains(r#"href="/traffic.json?chart=families&node=edge1&range=12h&tz=Asia/Tokyo""#));
    assert!(node_page.contains(r#"data-stat="efficiency">75.0 %"#));
    let (_, missing) = page("/nodes/nosuch?range=1h", None).await;
    assert!(missing.contains("There is no node named"));
}

async fn exports_in_csv_and_json_for_people_and_tokens_stay_in_their_org(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let (credential, _) = registered(&portal, &admin, "edge1").await;
    send(&portal, &credential, &report("boot-a", 1, 0, 0, 0)).await;
    send(
        &portal,
        &credential,
        &report("boot-a", 5, 6_000, 2_000, 1_000),
    )
    .await;

    // The signed-in person's downloads: a file per chart.
    let res = admin.get("/traffic.csv?chart=efficiency&range=1h").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"lastmile-fleet-efficiency-"),
        "{disposition}"
    );
    let csv = res.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "start,start_ms,seconds,hit_bytes,miss_bytes,efficiency"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 60, "a point a minute: {}", rows.len());
    let hits: i64 = rows.iter().map(|r| r[3].parse::<i64>().unwrap()).sum();
    assert_eq!(hits, 6_000);
    assert!(rows.iter().any(|r| r[5] == "0.75"), "{csv}");
    let res = admin
        .get("/traffic.json?chart=families&node=edge1&range=1d")
        .await;
    assert_eq!(res.status(), 200);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["node"], "edge1");
    assert_eq!(json["chart"], "families");
    assert_eq!(json["summary"]["families"]["office_bytes"], 1_000);
    let office: i64 = json["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["office_bytes"].as_i64().unwrap())
        .sum();
    assert_eq!(office, 1_000);
    assert!(
        json["points"][0].get("hit_bytes").is_none(),
        "only the chart's columns"
    );
    // Bad input is a 400 that says why; signed out is the sign-in page.
    let res = admin.get("/traffic.csv?chart=pie").await;
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Unknown chart \"pie\""),
        "{error}"
    );
    let res = admin.get("/traffic.csv?colour=red").await;
    assert_eq!(res.status(), 400);
    let res = portal.client().get("/traffic.csv").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");

    // The JSON API with a token: the same data, JSON unless asked for CSV.
    let api = Api::for_client(&admin).await;
    let (status, body) = api.get("/api/v1/traffic?range=1h").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chart"], "all");
    assert_eq!(body["summary"]["bytes_saved"], 6_000);
    assert_eq!(body["summary"]["served_bytes"], 8_000);
    assert_eq!(body["summary"]["efficiency"], 0.75);
    let point = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["hit_bytes"] != 0)
        .unwrap();
    for key in [
        "egress_bps",
        "origin_ingress_bps",
        "requests",
        "windows_update_bytes",
        "start",
    ] {
        assert!(point.get(key).is_some(), "{key} in {point}");
    }
    let now = app::backend::db::now_ms();
    let two_days_ago = app::traffic::utc_rfc3339(now - 2 * DAY_MS);
    let (status, body) = api
        .get(&format!(
            "/api/v1/nodes/edge1/traffic?range=custom&from={two_days_ago}&chart=egress&format=csv"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().unwrap();
    assert!(
        text.starts_with(
            "start,start_ms,seconds,egress_bps,origin_ingress_bps,served_bytes,origin_bytes\n"
        ),
        "{text}"
    );
    // Two days are read from hours: one line an hour.
    assert!((48..=50).contains(&text.lines().count()), "{text}");
    let backwards = format!(
        "/api/v1/traffic?range=custom&from={}&to={two_days_ago}",
        app::traffic::utc_rfc3339(now - DAY_MS)
    );
    let (status, body) = api.get(&backwards).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("must end after it starts"));
    let (status, body) = api.get("/api/v1/traffic?format=xml").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.get("/api/v1/nodes/nosuch/traffic").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = api.get("/api/v1/traffic?node=edge1").await;
    assert_eq!(status, 400, "the API names the node in the path");

    // Another organization sees none of it: its token gets "not found" for
    // this node, and its fleet is empty.
    let otto = second_org_admin(&portal, "otto", "other admin pw 1").await;
    let other = Api::for_client(&otto).await;
    let (status, body) = other.get("/api/v1/nodes/edge1/traffic?range=1h").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
    let (status, body) = other.get("/api/v1/traffic?range=1h").await;
    assert_eq!(status, 200);
    assert_eq!(body["summary"]["served_bytes"], 0);
    let res = otto.get("/traffic.json?node=edge1").await;
    assert_eq!(res.status(), 404);
    // Without a token, nothing.
    let res = reqwest::get(format!("{}/api/v1/traffic", portal.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

async fn metrics_need_the_token_and_api_metrics_stay_in_their_org(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    const TOKEN: &str = "metrics-token-for-tests-0123456789";
    let (portal, admin) = set_up_portal_with(
        &test_db,
        PortalOptions {
            metrics_token: Some(TOKEN.into()),
            ..Default::default()
        },
    )
    .await;
    let (credential, _) = registered(&portal, &admin, "edge1").await;
    send(&portal, &credential, &report("boot-a", 7, 9_000, 1_000, 0)).await;
    let otto = second_org_admin(&portal, "otto", "other admin pw 1").await;
    create_node(&otto, "far1", "198.51.100.1").await.unwrap();

    let http = reqwest::Client::new();
    let metrics = |token: Option<&'static str>| {
        let http = http.clone();
        let url = format!("{}/metrics", portal.base);
        async move {
            let mut req = http.get(url);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(metrics(None).await.0, 401);
    assert_eq!(metrics(Some("wrong-token")).await.0, 401);
    let (status, text) = metrics(Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE lastmile_nodes gauge"));
    assert!(
        text.contains(r#"lastmile_nodes{org="First ISP",state="healthy"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lastmile_nodes{org="Second ISP",state="never_connected"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lastmile_served_bytes_total{org="First ISP",source="hit"} 9000"#),
        "{text}"
    );
    assert!(text.contains(
        r#"lastmile_node_served_bytes_total{org="First ISP",node="edge1",source="miss"} 1000"#
    ));
    assert!(text.contains(r#"lastmile_origin_bytes_total{org="First ISP"} 1000"#));
    assert!(text
        .contains(r#"lastmile_family_bytes_total{org="First ISP",family="windows_update"} 10000"#));
    assert!(text.contains("lastmile_egress_bits_per_second{org=\"First ISP\"}"));

    // An organization's token reads its own figures only.
    let other = Api::for_client(&otto).await;
    let (status, body) = other.get("/api/v1/metrics").await;
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    assert!(text.contains(r#"lastmile_nodes{org="Second ISP",state="never_connected"} 1"#));
    assert!(
        !text.contains("First ISP") && !text.contains("edge1"),
        "{text}"
    );

    // A portal without a metrics token serves none.
    drop(portal);
    let test_db = TestDb::new(backend).await;
    let (portal, _) = set_up_portal(&test_db).await;
    let res = reqwest::get(format!("{}/metrics", portal.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("--metrics-token"));
}

#[test]
fn json_report_shape_is_stable() {
    // Guard against a rename slipping past the API documentation.
    let fields = json!([
        "node",
        "chart",
        "range",
        "start",
        "end",
        "start_ms",
        "end_ms",
        "step_seconds",
        "summary",
        "points"
    ]);
    let report = app::traffic::TrafficReport {
        node: None,
        range: app::traffic::RangeInfo {
            preset: Some(app::traffic::Preset::Hour1),
            start_ms: 0,
            end_ms: 60_000,
            step_ms: 60_000,
            description: String::new(),
        },
        time_zone: "UTC".into(),
        points: vec![],
        ticks: vec![],
        summary: app::traffic::TrafficSummary::of(&[], 60_000),
    };
    let json = report.to_json(app::traffic::Chart::All);
    for field in fields.as_array().unwrap() {
        assert!(json.get(field.as_str().unwrap()).is_some(), "{field}");
    }
}
