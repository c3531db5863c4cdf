//! The real agent binary against a real portal over HTTPS, with a local
//! origin standing in for the CDN: registration, config pull, apply,
//! acknowledgement, reports, a failed apply, the portal going away and
//! coming back, steering, the reference client and its fallback, and the
//! install script the portal serves.

#[path = "../../server/tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};
use support::*;

on_both_backends!(an_agent_registers_follows_its_config_and_reports);

async fn an_agent_registers_follows_its_config_and_reports(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let work = tempfile::tempdir().unwrap();
    let ca = make_test_ca(work.path());
    let options = |port| PortalOptions {
        tls: Tls::TestCa,
        test_ca: Some(ca.clone()),
        report_interval_secs: 1,
        config_poll_secs: 1,
        port,
        ..Default::default()
    };
    let (portal, admin) = set_up_portal_with(&test_db, options(None)).await;
    let port = portal
        .base
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let origin = Origin::start().await;
    let sha = origin.add("update.cab", 5 * 1024 * 1024 + 123);

    let drive1 = work.path().join("drive1");
    let drive2 = work.path().join("drive2");
    // Drives are the operator's to mount; the agent refuses missing ones.
    std::fs::create_dir_all(&drive1).unwrap();
    std::fs::create_dir_all(&drive2).unwrap();
    let drives = format!("{} 1\n{} 1", drive1.display(), drive2.display());
    admin
        .call(
            "create_node",
            &[
                ("name", "edge1"),
                ("public_ipv4", "127.0.0.1"),
                ("max_egress_mbps", "10000"),
                ("enabled", "on"),
                ("drives", &drives),
                ("extra_hosts", ORIGIN_HOST),
            ],
        )
        .await
        .expect("create node");
    admin
        .call(
            "save_manual_routing",
            &[("name", "edge1"), ("prefixes", "10.9.0.0/16")],
        )
        .await
        .unwrap();
    let issued = admin
        .call("issue_registration_key", &[("name", "edge1")])
        .await
        .unwrap();
    let key = issued["key"].as_str().unwrap().to_string();

    // Register over HTTPS, trusting the portal through the test CA.
    let state = work.path().join("state");
    let out = register_with(&portal, &key, &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Registered as node edge1 of First ISP"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("agent.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the credential is owner-only");
    }
    // The key worked once.
    let again = register_with(&portal, &key, &work.path().join("state2"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("unknown, used, revoked or expired"));

    // Run: it pulls its configuration, applies it, says so, and reports.
    let data_port = free_port();
    let mut agent = AgentProcess::start(&state, data_port, &origin, work.path().join("agent.log"));
    let detail = eventually(
        "the node to be online with its config applied",
        30,
        || async {
            let d = node(&admin, "edge1").await;
            (d["state"] == "online"
                && d["config_state"] == "applied"
                && d["health"]["serving"] == true)
                .then_some(d)
        },
    )
    .await;
    assert_eq!(detail["health"]["data_port"], data_port);
    assert_eq!(detail["health"]["drives"].as_array().unwrap().len(), 2);

    // A subscriber in the node's block is steered to it and downloads
    // through it, byte for byte.
    let download = work.path().join("update.cab");
    steered_to(&portal, "10.9.1.2", "edge1").await;
    let (ok, output) = fetch(
        &portal,
        &origin,
        &origin.url("update.cab"),
        "10.9.1.2",
        &download,
        &sha,
    );
    assert!(ok, "{output}");
    assert!(output.contains("from node edge1: 5.0 MiB"), "{output}");
    assert!(output.contains("from the CDN (origin): 0 B"), "{output}");
    // Its traffic reaches the portal.
    eventually("the download's bytes in the node's totals", 15, || async {
        let d = node(&admin, "edge1").await;
        (d["totals"]["miss_bytes"].as_i64().unwrap() >= 5 * 1024 * 1024).then_some(())
    })
    .await;
    // A second download is a cache hit.
    let (ok, output) = fetch(
        &portal,
        &origin,
        &origin.url("update.cab"),
        "10.9.1.3",
        &download,
        &sha,
    );
    assert!(ok, "{output}");
    eventually("hit bytes in the node's totals", 15, || async {
        let d = node(&admin, "edge1").await;
        (d["totals"]["hit_bytes"].as_i64().unwrap() >= 5 * 1024 * 1024).then_some(())
    })
    .await;

    // A configuration the node cannot apply shows as failed, with the
    // reason, and the node keeps serving on the previous one.
    let blocker = work.path().join("not-a-folder");
    std::fs::write(&blocker, b"a file where a folder should be").unwrap();
    let bad_drives = format!("{}/cache 1", blocker.display());
    admin
        .call(
            "update_node",
            &[
                ("name", "edge1"),
                ("public_ipv4", "127.0.0.1"),
                ("max_egress_mbps", "10000"),
                ("enabled", "on"),
                ("drives", &bad_drives),
                ("extra_hosts", ORIGIN_HOST),
            ],
        )
        .await
        .unwrap();
    let failed = eventually("the failed apply to show", 20, || async {
        let d = node(&admin, "edge1").await;
        (d["config_state"] == "failed").then_some(d)
    })
    .await;
    let reason = failed["apply_error"].as_str().unwrap();
    assert!(reason.contains("not-a-folder"), "{reason}");
    let (ok, output) = fetch(
        &portal,
        &origin,
        &origin.url("update.cab"),
        "10.9.1.4",
        &download,
        &sha,
    );
    assert!(ok && output.contains("from node edge1"), "{output}");

    // The portal goes away: the node keeps serving on its saved
    // configuration, and keeps serving after a restart of the agent.
    drop(portal);
    let direct = format!(
        "http://127.0.0.1:{data_port}/update.cab?{}={ORIGIN_HOST}",
        lastmile_wire::ORIGIN_PARAM
    );
    let body = reqwest::get(&direct).await.unwrap().bytes().await.unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        sha,
        "served with the portal away"
    );
    agent.signal("TERM");
    agent.wait();
    let agent = AgentProcess::start(&state, data_port, &origin, work.path().join("agent2.log"));
    let body = eventually(
        "the restarted agent to serve without the portal",
        20,
        || async {
            let res = reqwest::get(&direct).await.ok()?;
            if !res.status().is_success() {
                return None;
            }
            res.bytes().await.ok()
        },
    )
    .await;
    assert_eq!(hex::encode(Sha256::digest(&body)), sha);

    // The portal comes back where the agent expects it; the operator
    // fixes the drive, and the agent catches up.
    let portal = TestPortal::start_with(&test_db, options(Some(port))).await;
    let admin = portal.client();
    admin.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    admin
        .call(
            "update_node",
            &[
                ("name", "edge1"),
                ("public_ipv4", "127.0.0.1"),
                ("max_egress_mbps", "10000"),
                ("enabled", "on"),
                ("drives", &drives),
                ("extra_hosts", ORIGIN_HOST),
            ],
        )
        .await
        .unwrap();
    eventually(
        "the agent to catch up with the fixed configuration",
        30,
        || async {
            let d = node(&admin, "edge1").await;
            (d["config_state"] == "applied" && d["state"] == "online").then_some(())
        },
    )
    .await;
    assert!(!agent.log().contains("panicked"), "{}", agent.log());

    // Stopping the agent takes the node out of steering within three
    // report intervals: the subscriber goes to the CDN.
    drop(agent);
    eventually("the node to go offline", 20, || async {
        let d = node(&admin, "edge1").await;
        (d["state"] == "offline").then_some(())
    })
    .await;
    steered_to(&portal, "10.9.1.5", "CDN").await;
    let (ok, output) = fetch(
        &portal,
        &origin,
        &origin.url("update.cab"),
        "10.9.1.5",
        &download,
        &sha,
    );
    assert!(ok, "{output}");
    assert!(
        output.contains("steering: no node serves this client"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_client_falls_back_to_the_cdn_when_the_node_fails() {
    let test_db = TestDb::new(Backend::Sqlite).await;
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
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let sha = origin.add("big.cab", 6 * 1024 * 1024);
    // 8 Mbit/s: the node needs about six seconds for the file, time enough
    // to fail it part way.
    let issued = provisioned_node(&admin, work.path(), "slow1", "8").await;
    let state = work.path().join("state");
    let out = register_with(&portal, issued["key"].as_str().unwrap(), &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data_port = free_port();
    let agent = AgentProcess::start(&state, data_port, &origin, work.path().join("agent.log"));
    steered_to(&portal, "10.9.7.7", "slow1").await;

    let download = work.path().join("big.cab");
    let client = Command::new(AGENT)
        .arg("fetch")
        .arg(origin.url("big.cab"))
        .arg("--origin-resolve")
        .arg(format!("{ORIGIN_HOST}={}", origin.addr))
        .arg("--portal")
        .arg(&portal.base)
        .arg("--ca-file")
        .arg(portal.ca_file.as_ref().unwrap())
        .arg("--client")
        .arg("10.9.7.7")
        .arg("--output")
        .arg(&download)
        .arg("--sha256")
        .arg(&sha)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the node has served the client's first range (1 MiB, fetched
    // alone) and some of the next ones, as its once-a-second reports say,
    // kill it outright: about four of the six seconds are still to come.
    eventually("the node to serve part of the file", 10, || async {
        let d = node(&admin, "slow1").await;
        (d["totals"]["miss_bytes"].as_i64().unwrap() >= 3 * 1024 * 1024 / 2).then_some(())
    })
    .await;
    agent.signal("KILL");
    let output = client.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("the node failed part way"), "{text}");
    let node_bytes = text
        .lines()
        .find(|l| l.contains("from node slow1:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        !node_bytes.ends_with(": 0 B"),
        "the node served part: {text}"
    );
    let cdn_bytes = text
        .lines()
        .find(|l| l.contains("from the CDN (origin):"))
        .unwrap();
    assert!(
        !cdn_bytes.ends_with(": 0 B"),
        "the CDN served the rest: {text}"
    );
    // The SHA-256 was checked by the client; check the file too.
    let data = std::fs::read(&download).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&data)), sha);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_command_installs_registers_and_is_safe_to_rerun() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let (portal, admin) = set_up_portal_with(
        &test_db,
        PortalOptions {
            tls: Tls::SelfSigned,
            report_interval_secs: 1,
            config_poll_secs: 1,
            ..Default::default()
        },
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let issued = provisioned_node(&admin, work.path(), "edge7", "1000").await;
    let key = issued["key"].as_str().unwrap().to_string();
    let command = issued["install_command"].as_str().unwrap().to_string();
    assert!(command.contains("--pinnedpubkey"), "{command}");
    let root = work.path().join("root");

    // Exactly the command the portal shows, into a test root.
    let run = |command: String| {
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{command} --root '{}'", root.display()))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let (ok, text) = run(command.clone());
    assert!(ok, "{text}");
    assert!(
        !text.contains(&key),
        "the key never shows in the output: {text}"
    );
    assert!(text.contains("Registered as node edge7"), "{text}");

    let installed = root.join("usr/local/bin/lastmile-agent");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(AGENT).unwrap()
    );
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/lastmile-agent.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/lastmile-agent run --state-dir /var/lib/lastmile")
    );
    let state = root.join("var/lib/lastmile");
    {
        use std::os::unix::fs::PermissionsExt;
        let credential = std::fs::metadata(state.join("agent.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(credential & 0o777, 0o600);
    }
    let saved: Value =
        serde_json::from_slice(&std::fs::read(state.join("agent.json")).unwrap()).unwrap();
    assert_eq!(saved["trust"]["pin"], portal.tls_pin.clone().unwrap());
    let detail = node(&admin, "edge7").await;
    assert!(
        detail["registration_key"]["used_at_ms"].is_number(),
        "{detail}"
    );

    // Rerunning without a key keeps the registration.
    let without_key = command.replacen(
        &format!("export LASTMILE_REGISTRATION_KEY='{key}'; "),
        "",
        1,
    );
    assert_ne!(without_key, command);
    let (ok, text) = run(format!("unset LASTMILE_REGISTRATION_KEY; {without_key}"));
    assert!(ok, "{text}");
    assert!(
        text.contains("keeping this server's existing registration"),
        "{text}"
    );
    // Rerunning with the used key fails clearly, without showing it.
    let (ok, text) = run(command);
    assert!(!ok);
    assert!(text.contains("issue a new key"), "{text}");
    assert!(!text.contains(&key), "{text}");

    // The installed agent trusts the self-signed portal by its pinned key
    // and comes online.
    let data_port = free_port();
    let log = work.path().join("agent.log");
    let agent = AgentProcess::start(&state, data_port, &origin, log);
    eventually("the installed agent to come online", 30, || async {
        let d = node(&admin, "edge7").await;
        (d["state"] == "online" && d["config_state"] == "applied").then_some(())
    })
    .await;
    assert!(
        agent.log().contains("configuration applied"),
        "{}",
        agent.log()
    );
}
