//! Organizations and the people in them. Every query that touches a person
//! is scoped by the caller's organization: an id from another organization
//! simply is not found.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::audit::{self, Actor};
use super::db::{get_bool, now_ms, Db};
use crate::error::AppError;
use crate::model::{Me, Person, Role};

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Takes the organization's write lock for the rest of the transaction.
/// A no-op update is the one statement that locks on both backends (a row
/// lock on PostgreSQL, the write lock on SQLite), so checks such as "is this
/// the last administrator?" cannot race.
async fn lock_org(tx: &mut Transaction<'_, Any>, org_id: i64) -> Result<(), AppError> {
    let locked = sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(AppError::NotFound(
            "That organization no longer exists.".into(),
        ));
    }
    Ok(())
}

pub async fn setup_done(db: &Db) -> Result<bool, AppError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM portal_setup")
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

pub struct NewOrg<'a> {
    pub org_name: &'a str,
    pub admin_username: &'a str,
    pub admin_password_hash: &'a str,
    /// True when someone other than the administrator chose the password.
    pub must_change_password: bool,
    /// First-run setup: also marks the portal as set up, atomically, so a
    /// second setup attempt fails even if it races this one.
    pub is_first_run: bool,
}

/// Creates an organization with its first administrator. Returns
/// `(org_id, user_id)`.
pub async fn create_org(
    db: &Db,
    new: NewOrg<'_>,
    client_addr: &str,
) -> Result<(i64, i64), AppError> {
    let now = now_ms();
    let mut tx = db.pool.begin().await?;
    if new.is_first_run {
        let marked = sqlx::query("INSERT INTO portal_setup (id, done_at) VALUES (1, $1)")
            .bind(now)
            .execute(&mut *tx)
            .await;
        match marked {
            Err(e) if is_unique_violation(&e) => {
                return Err(AppError::Conflict(
                    "This portal is already set up. Sign in instead.".into(),
                ))
            }
            other => other?,
        };
    }
    let org_id: i64 =
        match sqlx::query("INSERT INTO orgs (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(new.org_name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
        {
            Ok(row) => row.try_get("id")?,
            Err(e) if is_unique_violation(&e) => {
                return Err(AppError::Conflict(format!(
                    "An organization named \"{}\" already exists.",
                    new.org_name
                )))
            }
            Err(e) => return Err(e.into()),
        };
    let user_id = insert_user(
        &mut tx,
        org_id,
        new.admin_username,
        Role::Admin,
        new.admin_password_hash,
        new.must_change_password,
    )
    .await?;
    let actor = Actor {
        user_id: Some(user_id),
        name: new.admin_username.to_string(),
        client_addr: client_addr.to_string(),
    };
    audit::record(
        &mut *tx,
        org_id,
        &actor,
        "org.create",
        &format!(
            "created organization \"{}\" with administrator {}",
            new.org_name, new.admin_username
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((org_id, user_id))
}

async fn insert_user(
    tx: &mut Transaction<'_, Any>,
    org_id: i64,
    username: &str,
    role: Role,
    password_hash: &str,
    must_change_password: bool,
) -> Result<i64, AppError> {
    let inserted = sqlx::query(
        "INSERT INTO users (org_id, username, password_hash, role, must_change_password, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(username)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(must_change_password as i64)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await;
    match inserted {
        Ok(row) => Ok(row.try_get("id")?),
        Err(e) if is_unique_violation(&e) => Err(AppError::Conflict(format!(
            "The user name \"{username}\" is already taken. Choose another."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// What sign-in needs to know about an account.
pub struct LoginAccount {
    pub user_id: i64,
    pub org_id: i64,
    pub password_hash: String,
    pub session_epoch: i64,
}

pub async fn find_for_login(db: &Db, username: &str) -> Result<Option<LoginAccount>, AppError> {
    let row = sqlx::query(
        "SELECT id, org_id, password_hash, session_epoch FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|row| {
        Ok(LoginAccount {
            user_id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            password_hash: row.try_get("password_hash")?,
            session_epoch: row.try_get("session_epoch")?,
        })
    })
    .transpose()
}

/// The signed-in person, if the session's account still exists and its
/// session epoch has not moved (a password reset ends older sessions).
pub async fn load_me(db: &Db, user_id: i64, session_epoch: i64) -> Result<Option<Me>, AppError> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.role, u.must_change_password, u.session_epoch, \
                o.id AS org_id, o.name AS org_name \
         FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<i64, _>("session_epoch")? != session_epoch {
        return Ok(None);
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

fn person_from_row(row: &AnyRow) -> Result<Person, AppError> {
    Ok(Person {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: row.try_get::<String, _>("role")?.parse()?,
        must_change_password: get_bool(row, "must_change_password")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

pub async fn list_people(db: &Db, org_id: i64) -> Result<Vec<Person>, AppError> {
    let rows = sqlx::query(
        "SELECT id, username, role, must_change_password, created_at FROM users \
         WHERE org_id = $1 ORDER BY username",
    )
    .bind(org_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(person_from_row).collect()
}

async fn find_person(
    tx: &mut Transaction<'_, Any>,
    org_id: i64,
    user_id: i64,
) -> Result<Person, AppError> {
    let row = sqlx::query(
        "SELECT id, username, role, must_change_password, created_at FROM users \
         WHERE id = $1 AND org_id = $2",
    )
    .bind(user_id)
    .bind(org_id)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) => person_from_row(&row),
        None => Err(AppError::NotFound(
            "No such person in your organization.".into(),
        )),
    }
}

async fn admin_count(tx: &mut Transaction<'_, Any>, org_id: i64) -> Result<i64, AppError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE org_id = $1 AND role = 'admin'")
        .bind(org_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("n")?)
}

pub async fn add_person(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    username: &str,
    role: Role,
    temporary_password_hash: &str,
) -> Result<i64, AppError> {
    let mut tx = db.pool.begin().await?;
    lock_org(&mut tx, org_id).await?;
    let id = insert_user(
        &mut tx,
        org_id,
        username,
        role,
        temporary_password_hash,
        true,
    )
    .await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "person.add",
        &format!("added {username} as {role}"),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn change_role(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    lock_org(&mut tx, org_id).await?;
    let person = find_person(&mut tx, org_id, user_id).await?;
    if person.role == role {
        return Ok(());
    }
    if person.role == Role::Admin && admin_count(&mut tx, org_id).await? <= 1 {
        return Err(AppError::Conflict(format!(
            "{} is the organization's only administrator. Make someone else an administrator first.",
            person.username
        )));
    }
    sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND org_id = $3")
        .bind(role.as_str())
        .bind(user_id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "person.role",
        &format!("changed {} from {} to {role}", person.username, person.role),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a temporary password that must be changed at the next sign-in, and
/// ends the person's current sessions.
pub async fn reset_password(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    user_id: i64,
    temporary_password_hash: &str,
) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    let person = find_person(&mut tx, org_id, user_id).await?;
    sqlx::query(
        "UPDATE users SET password_hash = $1, must_change_password = 1, \
         session_epoch = session_epoch + 1 WHERE id = $2 AND org_id = $3",
    )
    .bind(temporary_password_hash)
    .bind(user_id)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "person.reset_password",
        &format!("set a temporary password for {}", person.username),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn remove_person(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    user_id: i64,
) -> Result<(), AppError> {
    if actor.user_id == Some(user_id) {
        return Err(AppError::Conflict(
            "You cannot remove yourself. Ask another administrator.".into(),
        ));
    }
    let mut tx = db.pool.begin().await?;
    lock_org(&mut tx, org_id).await?;
    let person = find_person(&mut tx, org_id, user_id).await?;
    if person.role == Role::Admin && admin_count(&mut tx, org_id).await? <= 1 {
        return Err(AppError::Conflict(format!(
            "{} is the organization's only administrator and cannot be removed.",
            person.username
        )));
    }
    sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
        .bind(user_id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "person.remove",
        &format!("removed {}", person.username),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Changes one's own password. Returns the new session epoch: the caller's
/// own session moves to it, every other session of theirs ends.
pub async fn set_own_password(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    user_id: i64,
    password_hash: &str,
) -> Result<i64, AppError> {
    let mut tx = db.pool.begin().await?;
    let row = sqlx::query(
        "UPDATE users SET password_hash = $1, must_change_password = 0, \
         session_epoch = session_epoch + 1 WHERE id = $2 AND org_id = $3 RETURNING session_epoch",
    )
    .bind(password_hash)
    .bind(user_id)
    .bind(org_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::Unauthenticated)?;
    let epoch: i64 = row.try_get("session_epoch")?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "account.password",
        "changed their own password",
    )
    .await?;
    tx.commit().await?;
    Ok(epoch)
}

/// Current password hash of a signed-in person, to confirm it before a change.
pub async fn password_hash(db: &Db, user_id: i64) -> Result<String, AppError> {
    let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    Ok(row.try_get("password_hash")?)
}
