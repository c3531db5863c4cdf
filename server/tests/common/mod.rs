//! Test harness: a real portal on a real socket, over a real SQLite file or
//! a throw-away PostgreSQL database, and an HTTP client with a cookie jar.
#![allow(dead_code)]

use app::backend::{db::Db, AppState, PortalSettings};
use app::error::AppError;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect::Policy;
use serde_json::Value;
use server::{router, serve, RouterOptions, WebConfig};
use std::time::Duration;
use tokio::sync::oneshot;

pub const SETUP_CODE: &str = "test-setup-code";
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin password 1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of its own for one test: a SQLite file in a temporary folder,
/// or a fresh PostgreSQL database that is dropped afterwards.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server the tests use; `.ci/run` makes sure it runs.
pub fn postgres_admin_url() -> String {
    std::env::var("LASTMILE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("portal.db").display());
                TestDb {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let name = format!("lastmile_test_{:016x}", rand::thread_rng().gen::<u64>());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL must run for the tests ({admin}): {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').unwrap().0;
                TestDb {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    pub async fn open(&self) -> Db {
        Db::open(&self.url).await.expect("open test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async; use a small runtime on its own thread.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join()
        .ok();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP.
    None,
    /// A self-signed certificate, trusted by its key pin.
    SelfSigned,
    /// A certificate signed by a throw-away CA (`TestPortal::ca_file`).
    TestCa,
}

pub struct PortalOptions {
    pub tls: Tls,
    pub trust_forwarded_for: bool,
    /// Seconds between agent reports; nodes are offline after three.
    pub report_interval_secs: u64,
    pub config_poll_secs: u64,
    /// Listen on this loopback port (to restart a portal where agents
    /// expect it); a free one otherwise.
    pub port: Option<u16>,
    /// With `Tls::TestCa`: use this CA's files (from `make_test_ca`)
    /// instead of making a new CA, so a restarted portal is still trusted.
    pub test_ca: Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)>,
    /// The token /metrics asks for; off without one.
    pub metrics_token: Option<String>,
}

impl Default for PortalOptions {
    fn default() -> Self {
        Self {
            tls: Tls::None,
            trust_forwarded_for: true,
            report_interval_secs: 30,
            config_poll_secs: 15,
            port: None,
            test_ca: None,
            metrics_token: None,
        }
    }
}

/// A CA and a certificate it signed for localhost and 127.0.0.1, as PEM
/// files in `dir`: `(ca, cert, key)`.
pub fn make_test_ca(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Lastmile test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// The agent binary the portal serves: built beside the test binaries.
pub fn agent_binary() -> std::path::PathBuf {
    std::env::var_os("LASTMILE_AGENT_BIN")
        .map(Into::into)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/<test> -> target/<profile>/lastmile-agent
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("lastmile-agent")
        })
}

/// Binds a loopback port, waiting a little for a port a stopped portal
/// still holds while its last connections close.
async fn bind_loopback(port: u16) -> std::net::TcpListener {
    let mut last = None;
    for _ in 0..100 {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return listener,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot listen on 127.0.0.1:{port}: {last:?}");
}

/// A running portal. Stops when dropped.
pub struct TestPortal {
    pub base: String,
    pub db: Db,
    /// The key pin of a self-signed portal.
    pub tls_pin: Option<String>,
    /// The CA that signed the portal's certificate, with `Tls::TestCa`.
    pub ca_file: Option<std::path::PathBuf>,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    _tls_dir: Option<tempfile::TempDir>,
}

impl TestPortal {
    pub async fn start(test_db: &TestDb) -> TestPortal {
        Self::start_with(test_db, PortalOptions::default()).await
    }

    pub async fn start_with(test_db: &TestDb, options: PortalOptions) -> TestPortal {
        let db = test_db.open().await;
        let listener = bind_loopback(options.port.unwrap_or(0)).await;
        let port = listener.local_addr().unwrap().port();
        let tls_dir = (options.tls != Tls::None).then(|| tempfile::tempdir().unwrap());
        let (cert, key, ca_file) = match options.tls {
            Tls::None => (None, None, None),
            Tls::SelfSigned => {
                let (cert, key) = server::tls::ensure_self_signed(
                    tls_dir.as_ref().unwrap().path(),
                    &["localhost".into(), "127.0.0.1".into()],
                )
                .unwrap();
                (Some(cert), Some(key), None)
            }
            Tls::TestCa => {
                let (ca, cert, key) = options
                    .test_ca
                    .clone()
                    .unwrap_or_else(|| make_test_ca(tls_dir.as_ref().unwrap().path()));
                (Some(cert), Some(key), Some(ca))
            }
        };
        let tls_pin = (options.tls == Tls::SelfSigned).then(|| {
            server::tls::spki_pin(&std::fs::read_to_string(key.as_ref().unwrap()).unwrap()).unwrap()
        });
        let tls = match (&cert, &key) {
            (Some(cert), Some(key)) => Some(server::tls::rustls_config(cert, key).await.unwrap()),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let https = tls.is_some();
        let state = AppState::new(db.clone(), SETUP_CODE).with_settings(PortalSettings {
            https,
            tls_pin: tls_pin.clone(),
            report_interval_secs: options.report_interval_secs,
            config_poll_secs: options.config_poll_secs,
            ..PortalSettings::default()
        });
        let app = router(
            state.clone(),
            RouterOptions {
                site_root: "target/site".into(),
                secure_cookies: https,
                session_idle: Duration::from_secs(3600),
                web: WebConfig {
                    trust_forwarded_for: options.trust_forwarded_for,
                },
                agent_binary: agent_binary(),
                metrics_token: options.metrics_token.clone(),
            },
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, tls, async move {
            let _ = stopped.await;
        }));
        TestPortal {
            base: format!("{scheme}://127.0.0.1:{port}"),
            db,
            tls_pin,
            ca_file,
            state,
            stop: Some(stop),
            _tls_dir: tls_dir,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, None)
    }

    /// A client that claims to come from `addr` (the portal under test
    /// trusts X-Forwarded-For), for per-address behaviour.
    pub fn client_from(&self, addr: &str) -> Client {
        Client::new(&self.base, Some(addr))
    }
}

impl Drop for TestPortal {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (tests
/// look at them), accepts the self-signed certificate.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(base: &str, forwarded_for: Option<&str>) -> Client {
        let mut headers = HeaderMap::new();
        if let Some(addr) = forwarded_for {
            headers.insert(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(addr).unwrap(),
            );
        }
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .danger_accept_invalid_certs(true)
            .default_headers(headers)
            .build()
            .unwrap();
        Client {
            http,
            base: base.to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Calls a server function as the hydrated app does, returning its JSON
    /// result or the portal's error with the HTTP status.
    pub async fn call(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, (u16, AppError)> {
        let res = self
            .http
            .post(self.url(&format!("/api/{endpoint}")))
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let body = res.bytes().await.unwrap();
        if status >= 400 {
            let err: AppError = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "error body is not an AppError ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            });
            return Err((status, err));
        }
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn setup(
        &self,
        org: &str,
        user: &str,
        password: &str,
    ) -> Result<Value, (u16, AppError)> {
        self.call(
            "setup",
            &[
                ("setup_code", SETUP_CODE),
                ("org_name", org),
                ("username", user),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await
    }

    pub async fn login(&self, user: &str, password: &str) -> Result<Value, (u16, AppError)> {
        self.call("login", &[("username", user), ("password", password)])
            .await
    }

    pub async fn whoami(&self) -> Value {
        self.call("whoami", &[]).await.expect("whoami")
    }

    pub async fn people(&self) -> Vec<Value> {
        match self.call("people", &[]).await.expect("people") {
            Value::Array(list) => list,
            other => panic!("people: {other}"),
        }
    }

    pub async fn person_id(&self, username: &str) -> String {
        self.people()
            .await
            .iter()
            .find(|p| p["username"] == username)
            .unwrap_or_else(|| panic!("{username} not listed"))["id"]
            .to_string()
    }

    /// Adds a person and has them set their own password, returning a
    /// client signed in as them and ready to work.
    pub async fn add_ready_person(&self, portal: &TestPortal, user: &str, role: &str) -> Client {
        self.call(
            "add_person",
            &[
                ("username", user),
                ("role", role),
                ("temporary_password", "temporary pw 1"),
            ],
        )
        .await
        .expect("add person");
        let them = portal.client();
        them.login(user, "temporary pw 1")
            .await
            .expect("first sign-in");
        them.call(
            "change_password",
            &[
                ("current_password", "temporary pw 1"),
                ("new_password", "their own pw 1"),
                ("new_password_confirm", "their own pw 1"),
            ],
        )
        .await
        .expect("change temporary password");
        them
    }
}

/// A portal set up with one organization, and its administrator signed in.
pub async fn set_up_portal(test_db: &TestDb) -> (TestPortal, Client) {
    set_up_portal_with(test_db, PortalOptions::default()).await
}

/// [`set_up_portal`], for a portal started with `options`.
pub async fn set_up_portal_with(test_db: &TestDb, options: PortalOptions) -> (TestPortal, Client) {
    let portal = TestPortal::start_with(test_db, options).await;
    let admin = portal.client();
    admin
        .setup("First ISP", ADMIN, ADMIN_PASSWORD)
        .await
        .expect("setup");
    (portal, admin)
}

/// Creates a second organization on the portal, as `lastmile-portal
/// create-org` does, and returns a client signed in as its administrator
/// (with their own password, ready to work).
pub async fn second_org_admin(portal: &TestPortal, username: &str, password: &str) -> Client {
    let hash = app::backend::passwords::hash(password.to_string())
        .await
        .unwrap();
    app::backend::accounts::create_org(
        &portal.db,
        app::backend::accounts::NewOrg {
            org_name: "Second ISP",
            admin_username: username,
            admin_password_hash: &hash,
            must_change_password: false,
            is_first_run: false,
        },
        "test",
    )
    .await
    .unwrap();
    let client = portal.client();
    client.login(username, password).await.unwrap();
    client
}

/// Runs each named `async fn(Backend)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A JSON API caller with a bearer token.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// Creates an API token for the signed-in `client` and returns a caller.
    pub async fn for_client(client: &Client) -> Api {
        let created = client
            .call("create_api_token", &[("name", "tests")])
            .await
            .expect("create token");
        Api {
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            base: client.base.clone(),
            token: created["token"].as_str().unwrap().to_string(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// Creates a node through the portal's form endpoint.
pub async fn create_node(
    client: &Client,
    name: &str,
    address: &str,
) -> Result<Value, (u16, AppError)> {
    client
        .call(
            "create_node",
            &[
                ("name", name),
                ("public_ipv4", address),
                ("max_egress_mbps", "1000"),
                ("enabled", "on"),
                (
                    "drives",
                    "/var/cache/lastmile1 500\n/var/cache/lastmile2 250",
                ),
            ],
        )
        .await
}

/// Registers an agent with `key` as the real agent does.
pub async fn register(base: &str, key: &str) -> (u16, Value) {
    let res = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(format!("{base}{}", lastmile_wire::REGISTER_PATH))
        .json(&serde_json::json!({"key": key, "agent_version": "0.1.0", "hostname": "cache1.isp.example"}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}
