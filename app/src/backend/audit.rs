//! The audit log: every change, with who made it, when, and from where.

use sqlx::{Any, Executor, Row};

use super::db::{now_ms, Db};
use crate::error::AppError;
use crate::model::{AuditEntry, AuditPage};

/// Who did something, as the audit log records it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    pub client_addr: String,
}

pub async fn record<'e, E>(
    executor: E,
    org_id: i64,
    actor: &Actor,
    action: &str,
    detail: &str,
) -> Result<(), AppError>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (org_id, actor_user_id, actor, action, detail, client_addr, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org_id)
    .bind(actor.user_id)
    .bind(&actor.name)
    .bind(action)
    .bind(detail)
    .bind(&actor.client_addr)
    .bind(now_ms())
    .execute(executor)
    .await?;
    Ok(())
}

pub const PAGE_SIZE: i64 = 50;

/// A page of one organization's log, newest first, starting below the id
/// `older_than` when given.
pub async fn page(db: &Db, org_id: i64, older_than: Option<i64>) -> Result<AuditPage, AppError> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, detail, client_addr FROM audit_log \
         WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(org_id)
    .bind(older_than.unwrap_or(i64::MAX))
    .bind(PAGE_SIZE + 1)
    .fetch_all(&db.pool)
    .await?;
    let mut entries = rows
        .iter()
        .map(|row| {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                at_ms: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                detail: row.try_get("detail")?,
                client_addr: row.try_get("client_addr")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let older = if entries.len() as i64 > PAGE_SIZE {
        entries.truncate(PAGE_SIZE as usize);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage { entries, older })
}
