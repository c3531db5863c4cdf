use clap::Parser;
use rand::Rng;
use server::config::{Cli, Command};
use server::{router, serve, spawn_housekeeping, tls, RouterOptions, WebConfig};
use std::process::ExitCode;
use std::time::Duration;

use app::backend::{accounts, db::Db, passwords, AppState, PortalSettings};
use app::model::{normalize_org_name, normalize_username, validate_password};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LASTMILE_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lastmile-portal: {message}");
            ExitCode::FAILURE
        }
    }
}

fn random_code(len: usize) -> String {
    // No look-alikes (0/O, 1/l/I): people type this from a log.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn run(cli: Cli) -> Result<(), String> {
    let url = cli.database_url();
    let db = Db::open(&url)
        .await
        .map_err(|e| format!("{e} (database {})", app::backend::db::redact(&url)))?;
    match &cli.command {
        Some(Command::CreateOrg {
            name,
            admin,
            password,
        }) => create_org(&db, name, admin, password.clone()).await,
        Some(Command::Serve) | None => serve_portal(cli, db).await,
    }
}

async fn create_org(
    db: &Db,
    name: &str,
    admin: &str,
    password: Option<String>,
) -> Result<(), String> {
    let name = normalize_org_name(name).map_err(|e| e.to_string())?;
    let admin = normalize_username(admin).map_err(|e| e.to_string())?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(|| random_code(16));
    validate_password(&password, "The password").map_err(|e| e.to_string())?;
    let hash = passwords::hash(password.clone())
        .await
        .map_err(|e| e.to_string())?;
    accounts::create_org(
        db,
        accounts::NewOrg {
            org_name: &name,
            admin_username: &admin,
            admin_password_hash: &hash,
            must_change_password: true,
            is_first_run: false,
        },
        "command line",
    )
    .await
    .map_err(|e| e.to_string())?;
    println!("Created organization \"{name}\" with administrator {admin}.");
    if generated {
        println!("Temporary password (to be changed at first sign-in): {password}");
    }
    Ok(())
}

async fn serve_portal(cli: Cli, db: Db) -> Result<(), String> {
    let args = cli.serve;
    let state_probe = AppState::new(db.clone(), "");
    let set_up = state_probe.is_set_up().await.map_err(|e| e.to_string())?;
    let setup_code = args.setup_code.clone().unwrap_or_else(|| random_code(12));

    let (tls_files, scheme) = match (&args.tls_cert, &args.tls_key, args.self_signed) {
        (Some(cert), Some(key), _) => (Some((cert.clone(), key.clone())), "https"),
        (_, _, true) => {
            let dir = cli.data_dir.join("tls");
            let files = tls::ensure_self_signed(&dir, &args.tls_names)
                .map_err(|e| format!("self-signed certificate in {}: {e}", dir.display()))?;
            (Some(files), "https")
        }
        _ => (None, "http"),
    };
    // Only a self-signed certificate needs pinning: a CA-signed one is
    // trusted as it is, and pinning it would break agents at its renewal.
    let tls_pin = match (&tls_files, args.self_signed) {
        (Some((_, key)), true) => {
            let pem = std::fs::read_to_string(key)
                .map_err(|e| format!("reading {}: {e}", key.display()))?;
            Some(tls::spki_pin(&pem).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let traffic_retention = args.traffic_retention()?;
    let metrics_token = args
        .metrics_token
        .clone()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err("--metrics-token must be at least 16 characters long".into());
    }
    let state = AppState::new(db.clone(), setup_code.clone()).with_settings(PortalSettings {
        registration_key_ttl_ms: args.registration_key_hours.clamp(1, 24 * 30) as i64 * 3_600_000,
        public_url: args.public_url.clone(),
        https: tls_files.is_some(),
        tls_pin: tls_pin.clone(),
        report_interval_secs: args.report_interval_secs,
        config_poll_secs: args.config_poll_secs,
        traffic_retention,
    });
    state
        .steering
        .refresh()
        .await
        .map_err(|e| format!("loading the steering index: {e}"))?;
    let tls_config = match &tls_files {
        Some((cert, key)) => {
            let pem =
                std::fs::read(cert).map_err(|e| format!("reading {}: {e}", cert.display()))?;
            let fingerprint =
                tls::fingerprint(&pem).map_err(|e| format!("{}: {e}", cert.display()))?;
            println!(
                "TLS certificate {} SHA-256 fingerprint: {fingerprint}",
                cert.display()
            );
            Some(
                tls::rustls_config(cert, key)
                    .await
                    .map_err(|e| format!("loading TLS certificate and key: {e}"))?,
            )
        }
        None => {
            tracing::warn!(
                "serving plain HTTP: give --tls-cert/--tls-key or --self-signed unless a TLS proxy is in front"
            );
            None
        }
    };

    let site_root = args.site_root();
    if !site_root
        .join("pkg")
        .join(format!("{}.js", server::BUNDLE_NAME))
        .exists()
    {
        tracing::warn!(
            site_root = %site_root.display(),
            "browser bundle not found: pages render but stay static; build it with scripts/build-site"
        );
    }
    let app = router(
        state,
        RouterOptions {
            site_root: site_root.display().to_string(),
            secure_cookies: tls_config.is_some(),
            session_idle: Duration::from_secs(args.session_idle_hours.max(1) * 3600),
            web: WebConfig {
                trust_forwarded_for: args.trust_forwarded_for,
            },
            agent_binary: args.agent_binary(),
            metrics_token,
        },
    );
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let shown_host = if local.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        local.ip().to_string()
    };
    println!(
        "Lastmile portal listening on {scheme}://{shown_host}:{}/",
        local.port()
    );
    if !set_up {
        println!("First run: open {scheme}://{shown_host}:{}/setup and enter the setup code {setup_code}", local.port());
    }
    spawn_housekeeping(db, traffic_retention);
    serve(listener, app, tls_config, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
