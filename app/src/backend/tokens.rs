//! API tokens: per-person credentials for the JSON API. A token acts with
//! its creator's current role in their organization, and stops working when
//! revoked or when its creator is removed.

use sqlx::Row;

use super::audit::{self, Actor};
use super::db::{get_bool, now_ms, Db};
use super::secrets;
use crate::error::AppError;
use crate::model::{ApiTokenInfo, Me, NewApiToken};

pub const TOKEN_PREFIX: &str = "lmt_";

pub async fn create(db: &Db, me: &Me, actor: &Actor, name: &str) -> Result<NewApiToken, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "Give the token a name of 1 to 100 characters that says what uses it.",
        ));
    }
    let token = secrets::generate(TOKEN_PREFIX);
    let mut tx = db.pool.begin().await?;
    sqlx::query("INSERT INTO api_tokens (org_id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(me.org_id)
        .bind(me.user_id)
        .bind(name)
        .bind(secrets::hash(&token))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        me.org_id,
        actor,
        "token.create",
        &format!("created API token \"{name}\""),
    )
    .await?;
    tx.commit().await?;
    Ok(NewApiToken {
        name: name.to_string(),
        token,
    })
}

pub async fn list(db: &Db, me: &Me) -> Result<Vec<ApiTokenInfo>, AppError> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, last_used_at FROM api_tokens \
         WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
    )
    .bind(me.user_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApiTokenInfo {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at_ms: r.try_get("created_at")?,
                last_used_at_ms: r.try_get("last_used_at")?,
            })
        })
        .collect()
}

pub async fn revoke(db: &Db, me: &Me, actor: &Actor, id: i64) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    let row = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL RETURNING name",
    )
    .bind(now_ms())
    .bind(id)
    .bind(me.user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::NotFound("You have no such API token.".into()))?;
    let name: String = row.try_get("name")?;
    audit::record(
        &mut *tx,
        me.org_id,
        actor,
        "token.revoke",
        &format!("revoked API token \"{name}\""),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The person a token speaks for, if it is a live token.
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<Me>, AppError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT t.id AS token_id, t.last_used_at, u.id, u.username, u.role, u.must_change_password, \
                o.id AS org_id, o.name AS org_name \
         FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN orgs o ON o.id = u.org_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(secrets::hash(token))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    // Record use at most once a minute: a busy automation should not turn
    // every read into a write.
    let now = now_ms();
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    if last_used.is_none_or(|t| now - t > 60_000) {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(row.try_get::<i64, _>("token_id")?)
            .execute(&db.pool)
            .await?;
    }
    Ok(Some(Me {
        user_id: row.try_get("id")?,
        username: row.try_get("username")?,
        org_id: row.try_get("org_id")?,
        org_name: row.try_get("org_name")?,
        role: row.try_get::<String, _>("role")?.parse()?,
        must_change_password: get_bool(&row, "must_change_password")?,
    }))
}
