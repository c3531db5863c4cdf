//! Sign-in throttling. Failures are kept in the database, so every portal
//! process behind a load balancer sees the same count. An account is locked
//! after a few failures in a sliding window, and so is a client address that
//! fails often across many accounts (password spraying). Failures for unknown
//! user names count the same as for real ones, so a lock tells nothing about
//! whether an account exists.

use sqlx::Row;

use super::db::{now_ms, Db};
use crate::error::AppError;

pub const WINDOW_MS: i64 = 15 * 60 * 1000;
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
pub const MAX_FAILURES_PER_CLIENT: i64 = 20;

/// Refuses the attempt when the account or the client address is locked.
pub async fn check(db: &Db, username: &str, client_addr: &str) -> Result<(), AppError> {
    let since = now_ms() - WINDOW_MS;
    for (column, value, limit, whose) in [
        (
            "username",
            username,
            MAX_FAILURES_PER_ACCOUNT,
            "this account",
        ),
        (
            "client_addr",
            client_addr,
            MAX_FAILURES_PER_CLIENT,
            "your address",
        ),
    ] {
        // The query only differs by a column name from a fixed list above.
        let sql = format!(
            "SELECT COUNT(*) AS failures, MIN(at) AS oldest FROM \
             (SELECT at FROM login_failures WHERE {column} = $1 AND at > $2 \
              ORDER BY at DESC LIMIT $3) recent"
        );
        let row = sqlx::query(&sql)
            .bind(value)
            .bind(since)
            .bind(limit)
            .fetch_one(&db.pool)
            .await?;
        let failures: i64 = row.try_get("failures")?;
        if failures >= limit {
            let oldest: i64 = row.try_get("oldest")?;
            let wait_ms = (oldest + WINDOW_MS - now_ms()).max(0);
            let minutes = (wait_ms + 59_999) / 60_000;
            return Err(AppError::TooManyAttempts(format!(
                "Too many failed sign-ins for {whose}. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )));
        }
    }
    Ok(())
}

pub async fn record_failure(db: &Db, username: &str, client_addr: &str) -> Result<(), AppError> {
    sqlx::query("INSERT INTO login_failures (username, client_addr, at) VALUES ($1, $2, $3)")
        .bind(username)
        .bind(client_addr)
        .bind(now_ms())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// A successful sign-in forgives the account's earlier failures.
pub async fn clear_account(db: &Db, username: &str) -> Result<(), AppError> {
    sqlx::query("DELETE FROM login_failures WHERE username = $1")
        .bind(username)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Drops failures that have left the window; run periodically.
pub async fn prune(db: &Db) -> Result<(), AppError> {
    sqlx::query("DELETE FROM login_failures WHERE at <= $1")
        .bind(now_ms() - WINDOW_MS)
        .execute(&db.pool)
        .await?;
    Ok(())
}
