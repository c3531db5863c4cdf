//! The portal over real HTTP: setup, sign-in, roles, people, the audit log,
//! organization isolation and request forgery, on SQLite and PostgreSQL.

mod common;

use app::error::AppError;
use common::*;
use serde_json::Value;

on_both_backends!(
    first_run_setup_happens_once,
    failed_sign_ins_do_not_tell_which_part_was_wrong,
    repeated_failures_lock_the_account_and_the_address,
    roles_limit_what_people_can_do,
    temporary_passwords_must_be_changed_first,
    administrators_manage_people,
    a_password_reset_ends_the_persons_sessions,
    organizations_cannot_see_or_touch_each_other,
    the_audit_log_records_who_what_when_and_from_where,
    cross_site_posts_are_refused_and_change_nothing,
    forms_without_javascript_redirect_and_show_errors,
    sessions_are_shared_by_portal_processes,
    broken_requests_get_clear_errors,
    signing_out_ends_the_session,
);

async fn first_run_setup_happens_once(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let portal = TestPortal::start(&test_db).await;
    let browser = portal.client();

    let res = browser.get("/").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/setup");
    let res = browser.get("/setup").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Set up Lastmile"));

    let wrong_code = browser
        .call(
            "setup",
            &[
                ("setup_code", "guess"),
                ("org_name", "Evil"),
                ("username", "evil"),
                ("password", "0123456789"),
                ("password_confirm", "0123456789"),
            ],
        )
        .await;
    assert!(
        matches!(wrong_code, Err((400, AppError::Invalid(ref m))) if m.contains("setup code")),
        "{wrong_code:?}"
    );

    let mismatch = browser
        .call(
            "setup",
            &[
                ("setup_code", SETUP_CODE),
                ("org_name", "First ISP"),
                ("username", "admin"),
                ("password", "0123456789"),
                ("password_confirm", "0123456780"),
            ],
        )
        .await;
    assert_eq!(
        mismatch,
        Err((
            400,
            AppError::Invalid("The two passwords do not match.".into())
        ))
    );

    browser
        .setup("First ISP", ADMIN, ADMIN_PASSWORD)
        .await
        .expect("setup");
    let me = browser.whoami().await;
    assert_eq!(me["username"], ADMIN);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["org_name"], "First ISP");

    // The setup page is gone, and setting up again is refused.
    let res = portal.client().get("/setup").await;
    assert_eq!(res.status(), 404);
    let again = portal
        .client()
        .setup("Second ISP", "other", "another password")
        .await;
    assert!(
        matches!(again, Err((409, AppError::Conflict(_)))),
        "{again:?}"
    );
    assert_eq!(browser.people().await.len(), 1);
}

async fn failed_sign_ins_do_not_tell_which_part_was_wrong(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, _admin) = set_up_portal(&test_db).await;
    let wrong_password = portal
        .client()
        .login(ADMIN, "not the password")
        .await
        .unwrap_err();
    let unknown_user = portal
        .client()
        .login("nobody", "not the password")
        .await
        .unwrap_err();
    let malformed_user = portal
        .client()
        .login("no body!", "not the password")
        .await
        .unwrap_err();
    assert_eq!(
        wrong_password,
        (400, AppError::Invalid(app::api::SIGN_IN_FAILED.into()))
    );
    assert_eq!(unknown_user, wrong_password);
    assert_eq!(malformed_user, wrong_password);
    // Names are case-insensitive.
    portal
        .client()
        .login("ADMIN", ADMIN_PASSWORD)
        .await
        .expect("case-insensitive sign-in");
}

async fn repeated_failures_lock_the_account_and_the_address(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, _admin) = set_up_portal(&test_db).await;

    // Five failures for one account, from one address...
    let attacker = portal.client_from("198.51.100.7");
    for _ in 0..app::backend::throttle::MAX_FAILURES_PER_ACCOUNT {
        assert_eq!(
            attacker.login(ADMIN, "guess guess").await.unwrap_err().0,
            400
        );
    }
    // ...lock the account everywhere, even for the right password.
    let elsewhere = portal.client_from("203.0.113.9");
    match elsewhere.login(ADMIN, ADMIN_PASSWORD).await {
        Err((429, AppError::TooManyAttempts(m))) => {
            assert!(m.contains("this account") && m.contains("minutes"), "{m}")
        }
        other => panic!("expected a lock, got {other:?}"),
    }

    // An address failing across many accounts is locked too, even for a
    // name it has not tried.
    let sprayer = portal.client_from("192.0.2.44");
    for i in 0..app::backend::throttle::MAX_FAILURES_PER_CLIENT {
        sprayer
            .login(&format!("user{i}"), "password1234")
            .await
            .unwrap_err();
    }
    match sprayer.login("fresh-name", "password1234").await {
        Err((429, AppError::TooManyAttempts(m))) => assert!(m.contains("your address"), "{m}"),
        other => panic!("expected an address lock, got {other:?}"),
    }
    // Another address is not affected by that lock.
    let bystander = portal.client_from("192.0.2.45");
    assert_eq!(
        bystander
            .login("fresh-name", "password1234")
            .await
            .unwrap_err()
            .0,
        400
    );
}

async fn roles_limit_what_people_can_do(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let viewer = admin.add_ready_person(&portal, "vera", "viewer").await;
    let operator = admin.add_ready_person(&portal, "otto", "operator").await;
    let vera_id = admin.person_id("vera").await;

    for (who, client) in [("viewer", &viewer), ("operator", &operator)] {
        // Everyone may look at the people in their organization...
        assert_eq!(client.people().await.len(), 3, "{who}");
        // ...but only administrators change them or read the audit log.
        let attempts: [(&str, Vec<(&str, &str)>); 5] = [
            (
                "add_person",
                vec![
                    ("username", "mallory"),
                    ("role", "admin"),
                    ("temporary_password", "0123456789"),
                ],
            ),
            (
                "change_role",
                vec![("user_id", &vera_id), ("role", "admin")],
            ),
            (
                "reset_password",
                vec![("user_id", &vera_id), ("temporary_password", "0123456789")],
            ),
            ("remove_person", vec![("user_id", &vera_id)]),
            ("audit_log", vec![]),
        ];
        for (endpoint, form) in attempts {
            match client.call(endpoint, &form).await {
                Err((403, AppError::Forbidden(m))) => assert!(m.contains(who), "{m}"),
                other => panic!("{who} calling {endpoint}: {other:?}"),
            }
        }
    }
    let people = admin.people().await;
    assert_eq!(people.len(), 3, "nothing was added or removed");
    assert!(people
        .iter()
        .any(|p| p["username"] == "vera" && p["role"] == "viewer"));
}

async fn temporary_passwords_must_be_changed_first(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    admin
        .call(
            "add_person",
            &[
                ("username", "newbie"),
                ("role", "operator"),
                ("temporary_password", "temporary pw 1"),
            ],
        )
        .await
        .unwrap();
    let newbie = portal.client();
    newbie.login("newbie", "temporary pw 1").await.unwrap();
    assert_eq!(newbie.whoami().await["must_change_password"], true);

    // Until the password is changed, pages lead to the password page and
    // server functions refuse.
    let res = newbie.get("/people").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account/password");
    assert_eq!(
        newbie.call("people", &[]).await,
        Err((403, AppError::PasswordChangeRequired))
    );

    let change = |current: &'static str, new: &'static str, confirm: &'static str| {
        let newbie = &newbie;
        async move {
            newbie
                .call(
                    "change_password",
                    &[
                        ("current_password", current),
                        ("new_password", new),
                        ("new_password_confirm", confirm),
                    ],
                )
                .await
        }
    };
    assert_eq!(
        change("wrong current", "a new password", "a new password").await,
        Err((
            400,
            AppError::Invalid("The current password is incorrect.".into())
        ))
    );
    assert_eq!(
        change("temporary pw 1", "short", "short").await,
        Err((
            400,
            AppError::Invalid("The new password must be at least 10 characters long.".into())
        ))
    );
    assert_eq!(
        change("temporary pw 1", "temporary pw 1", "temporary pw 1").await,
        Err((
            400,
            AppError::Invalid("The new password must differ from the current one.".into())
        ))
    );
    change("temporary pw 1", "a new password", "a new password")
        .await
        .unwrap();
    assert_eq!(newbie.whoami().await["must_change_password"], false);
    assert_eq!(newbie.people().await.len(), 2);
    assert_eq!(newbie.get("/people").await.status(), 200);
    // The old password no longer works, the new one does.
    assert!(portal
        .client()
        .login("newbie", "temporary pw 1")
        .await
        .is_err());
    portal
        .client()
        .login("newbie", "a new password")
        .await
        .unwrap();
}

async fn administrators_manage_people(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    admin
        .call(
            "add_person",
            &[
                ("username", "Vera"),
                ("role", "viewer"),
                ("temporary_password", "temporary pw 1"),
            ],
        )
        .await
        .unwrap();
    let duplicate = admin
        .call(
            "add_person",
            &[
                ("username", "vera"),
                ("role", "operator"),
                ("temporary_password", "temporary pw 1"),
            ],
        )
        .await;
    assert_eq!(
        duplicate,
        Err((
            409,
            AppError::Conflict("The user name \"vera\" is already taken. Choose another.".into())
        ))
    );
    let bad_role = admin
        .call(
            "add_person",
            &[
                ("username", "x"),
                ("role", "root"),
                ("temporary_password", "temporary pw 1"),
            ],
        )
        .await;
    assert!(
        matches!(bad_role, Err((400, AppError::Invalid(ref m))) if m.contains("root")),
        "{bad_role:?}"
    );

    let vera = admin.person_id("vera").await;
    admin
        .call("change_role", &[("user_id", &vera), ("role", "operator")])
        .await
        .unwrap();
    assert!(admin
        .people()
        .await
        .iter()
        .any(|p| p["username"] == "vera" && p["role"] == "operator"));

    // The last administrator can be neither demoted nor removed, and nobody
    // removes themselves.
    let me = admin.person_id(ADMIN).await;
    let demote = admin
        .call("change_role", &[("user_id", &me), ("role", "viewer")])
        .await;
    assert!(
        matches!(demote, Err((409, AppError::Conflict(ref m))) if m.contains("only administrator")),
        "{demote:?}"
    );
    let remove_self = admin.call("remove_person", &[("user_id", &me)]).await;
    assert!(matches!(remove_self, Err((409, _))), "{remove_self:?}");
    // With a second administrator, the first may step down.
    admin
        .call("change_role", &[("user_id", &vera), ("role", "admin")])
        .await
        .unwrap();
    admin
        .call("change_role", &[("user_id", &me), ("role", "operator")])
        .await
        .unwrap();
    assert_eq!(admin.whoami().await["role"], "operator");
    assert!(matches!(
        admin.call("remove_person", &[("user_id", &vera)]).await,
        Err((403, _))
    ));

    let vera_client = portal.client();
    vera_client.login("vera", "temporary pw 1").await.unwrap();
    vera_client
        .call(
            "change_password",
            &[
                ("current_password", "temporary pw 1"),
                ("new_password", "vera's own pw"),
                ("new_password_confirm", "vera's own pw"),
            ],
        )
        .await
        .unwrap();
    vera_client
        .call("remove_person", &[("user_id", &me)])
        .await
        .unwrap();
    assert_eq!(vera_client.people().await.len(), 1);
    // The removed person's session ends with them.
    assert_eq!(admin.whoami().await, Value::Null);
    assert!(portal.client().login(ADMIN, ADMIN_PASSWORD).await.is_err());
}

async fn a_password_reset_ends_the_persons_sessions(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin) = set_up_portal(&test_db).await;
    let operator = admin.add_ready_person(&portal, "otto", "operator").await;
    assert_eq!(operator.whoami().await["username"], "otto");
    let otto = admin.person_id("otto").await;
    let short = admin
        .call(
            "reset_password",
            &[("user_id", &otto), ("temporary_password", "short")],
        )
        .await;
    assert_eq!(
        short,
        Err((
            400,
            AppError::Invalid("The temporary password must be at least 10 characters long.".into())
        ))
    );
    admin
        .call(
            "reset_password",
            &[
                ("user_id", &otto),
                ("temporary_password", "a fresh temp pw"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        operator.whoami().await,
        Value::Null,
        "the old session ended"
    );
    let again = portal.client();
    again.login("otto", "a fresh temp pw").await.unwrap();
    assert_eq!(again.whoami().await["must_change_password"], true);
}

async fn organizations_cannot_see_or_touch_each_other(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, admin_a) = set_up_portal(&test_db).await;
    admin_a.add_ready_person(&portal, "alice", "viewer").await;
    let alice_id = admin_a.person_id("alice").await;

    // A second organization, as `lastmile-portal create-org` makes it.
    let admin_b = second_org_admin(&portal, "bob", "second admin pw").await;
    assert_eq!(admin_b.whoami().await["org_name"], "Second ISP");

    // B sees only B.
    let people_b = admin_b.people().await;
    assert_eq!(people_b.len(), 1);
    assert_eq!(people_b[0]["username"], "bob");
    let audit_b = admin_b.call("audit_log", &[]).await.unwrap();
    for entry in audit_b["entries"].as_array().unwrap() {
        assert_eq!(
            entry["actor"], "bob",
            "B's log shows only B's organization: {entry}"
        );
    }

    // B cannot touch A's people: they do not exist for B.
    for (endpoint, form) in [
        (
            "change_role",
            vec![("user_id", alice_id.as_str()), ("role", "admin")],
        ),
        (
            "reset_password",
            vec![
                ("user_id", alice_id.as_str()),
                ("temporary_password", "taken over!!"),
            ],
        ),
        ("remove_person", vec![("user_id", alice_id.as_str())]),
    ] {
        match admin_b.call(endpoint, &form).await {
            Err((404, AppError::NotFound(_))) => {}
            other => panic!("{endpoint} across organizations: {other:?}"),
        }
    }
    // A is untouched, and A does not see B either.
    let people_a = admin_a.people().await;
    assert_eq!(people_a.len(), 2);
    assert!(people_a
        .iter()
        .any(|p| p["username"] == "alice" && p["role"] == "viewer"));
    assert!(!people_a.iter().any(|p| p["username"] == "bob"));
    let audit_a = admin_a.call("audit_log", &[]).await.unwrap();
    assert!(!audit_a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "bob"));

    // User names are unique across the portal: B cannot add another "alice".
    let clash = admin_b
        .call(
            "add_person",
            &[
                ("username", "alice"),
                ("role", "viewer"),
                ("temporary_password", "0123456789"),
            ],
        )
        .await;
    assert!(matches!(clash, Err((409, _))), "{clash:?}");
}

async fn the_audit_log_records_who_what_when_and_from_where(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let portal = TestPortal::start(&test_db).await;
    let admin = portal.client_from("198.51.100.20");
    let before = app::backend::db::now_ms();
    admin
        .setup("First ISP", ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    admin.add_ready_person(&portal, "vera", "viewer").await;
    let vera = admin.person_id("vera").await;
    admin
        .call("change_role", &[("user_id", &vera), ("role", "operator")])
        .await
        .unwrap();
    portal
        .client_from("198.51.100.21")
        .login("vera", "wrong password")
        .await
        .unwrap_err();

    let log = admin.call("audit_log", &[]).await.unwrap();
    let entries = log["entries"].as_array().unwrap();
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {entries:#?}"))
    };
    let created = find("org.create");
    assert_eq!(created["actor"], ADMIN);
    assert_eq!(created["client_addr"], "198.51.100.20");
    assert!(created["at_ms"].as_i64().unwrap() >= before);
    assert_eq!(find("person.add")["detail"], "added vera as viewer");
    assert_eq!(
        find("person.role")["detail"],
        "changed vera from viewer to operator"
    );
    assert_eq!(find("account.password")["actor"], "vera");
    let failed = find("auth.login_failed");
    assert_eq!(failed["actor"], "vera");
    assert_eq!(failed["client_addr"], "198.51.100.21");
    // Newest first.
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // The page renders the log for administrators.
    let page = admin.get("/audit").await.text().await.unwrap();
    assert!(page.contains("changed vera from viewer to operator"));
}

async fn cross_site_posts_are_refused_and_change_nothing(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (_portal, admin) = set_up_portal(&test_db).await;
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let res = admin
            .http
            .post(admin.url("/api/add_person"))
            .header("accept", "application/json")
            .header(name, value)
            .form(&[
                ("username", "planted"),
                ("role", "admin"),
                ("temporary_password", "0123456789"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
    }
    // The same request from the portal's own origin goes through.
    let res = admin
        .http
        .post(admin.url("/api/add_person"))
        .header("accept", "application/json")
        .header("origin", admin.base.clone())
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("username", "welcome"),
            ("role", "viewer"),
            ("temporary_password", "0123456789"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let names: Vec<Value> = admin
        .people()
        .await
        .into_iter()
        .map(|p| p["username"].clone())
        .collect();
    assert!(!names.contains(&Value::from("planted")));
    assert!(names.contains(&Value::from("welcome")));
}

async fn forms_without_javascript_redirect_and_show_errors(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (portal, _admin) = set_up_portal(&test_db).await;
    let browser = portal.client();
    let login_page = browser.url("/login");
    let post = |user: &'static str, password: &'static str| {
        let browser = &browser;
        let login_page = login_page.clone();
        async move {
            browser
                .http
                .post(browser.url("/api/login"))
                .header("accept", "text/html,application/xhtml+xml")
                .header("referer", login_page)
                .form(&[("username", user), ("password", password)])
                .send()
                .await
                .unwrap()
        }
    };
    let res = post(ADMIN, "wrong password").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
    // Between the refusal and the page that shows it, the session holds
    // what was typed, but never the password.
    let db = test_db.open().await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT data FROM sessions")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let kept_name = format!(r#"["username","{ADMIN}"]"#);
    assert!(
        stored.iter().any(|data| data.contains(&kept_name)),
        "{stored:?}"
    );
    assert!(
        !stored.iter().any(|data| data.contains("wrong password")),
        "{stored:?}"
    );
    let page = browser.get("/login").await.text().await.unwrap();
    assert!(
        page.contains(app::api::SIGN_IN_FAILED),
        "the error is shown on the page"
    );
    assert!(
        page.contains(&format!(r#"value="{ADMIN}""#)),
        "the user name is still in its field"
    );
    let page = browser.get("/login").await.text().await.unwrap();
    assert!(!page.contains(app::api::SIGN_IN_FAILED), "and only once");
    assert!(
        !page.contains(&format!(r#"value="{ADMIN}""#)),
        "so is the input"
    );

    let res = post(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/");
    let home = browser.get("/").await;
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("First ISP"));
}

async fn sessions_are_shared_by_portal_processes(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (first, _admin) = set_up_portal(&test_db).await;
    // A second portal on the same database, as behind a load balancer.
    let second = TestPortal::start(&test_db).await;
    // Sign in on the first process and keep the cookie it sets.
    let browser = first.client();
    let res = browser
        .http
        .post(browser.url("/api/login"))
        .header("accept", "application/json")
        .form(&[("username", ADMIN), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap();
    let jar_cookie = set_cookie.split(';').next().unwrap().to_string();
    let res = reqwest::Client::new()
        .post(format!("{}/api/whoami", second.base))
        .header("accept", "application/json")
        .header("cookie", jar_cookie)
        .send()
        .await
        .unwrap();
    let me: Value = res.json().await.unwrap();
    assert_eq!(
        me["username"], ADMIN,
        "the second process knows the session"
    );
}

async fn broken_requests_get_clear_errors(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (_portal, admin) = set_up_portal(&test_db).await;
    let missing = admin.call("add_person", &[("username", "x")]).await;
    assert!(
        matches!(missing, Err((400, AppError::Invalid(ref m))) if m.contains("malformed")),
        "{missing:?}"
    );
    let not_a_number = admin.call("remove_person", &[("user_id", "seven")]).await;
    assert!(
        matches!(not_a_number, Err((400, AppError::Invalid(_)))),
        "{not_a_number:?}"
    );
    let bad_name = admin
        .call(
            "add_person",
            &[
                ("username", "a b"),
                ("role", "viewer"),
                ("temporary_password", "0123456789"),
            ],
        )
        .await;
    assert!(
        matches!(bad_name, Err((400, AppError::Invalid(ref m))) if m.contains("User names may contain")),
        "{bad_name:?}"
    );
    let nobody = admin.call("remove_person", &[("user_id", "999999")]).await;
    assert!(matches!(nobody, Err((404, _))), "{nobody:?}");
    assert_eq!(admin.people().await.len(), 1, "nothing was half-saved");
}

async fn signing_out_ends_the_session(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let (_portal, admin) = set_up_portal(&test_db).await;
    admin.call("logout", &[]).await.unwrap();
    assert_eq!(admin.whoami().await, Value::Null);
    assert_eq!(
        admin.call("people", &[]).await,
        Err((401, AppError::Unauthenticated))
    );
    let res = admin.get("/people").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
}

/// Session cookies are HttpOnly and SameSite=Strict always, and Secure under
/// HTTPS.
#[tokio::test]
async fn session_cookies_are_locked_down() {
    for tls in [Tls::SelfSigned, Tls::None] {
        let test_db = TestDb::new(Backend::Sqlite).await;
        let portal = TestPortal::start_with(
            &test_db,
            PortalOptions {
                tls,
                ..Default::default()
            },
        )
        .await;
        let client = portal.client();
        let res = client
            .http
            .post(client.url("/api/setup"))
            .header("accept", "application/json")
            .form(&[
                ("setup_code", SETUP_CODE),
                ("org_name", "First ISP"),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
                ("password_confirm", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.starts_with("lastmile_session="), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert_eq!(cookie.contains("Secure"), tls != Tls::None, "{cookie}");
    }
}
