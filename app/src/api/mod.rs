//! Server functions: the portal's actions. Each is a POST endpoint under
//! `/api/` that a plain HTML form can submit (form-encoded arguments) and
//! that the hydrated page calls in place. Every one checks who is asking.

use leptos::prelude::*;

pub mod nodes;
pub mod tokens;
pub mod traffic;
pub use nodes::*;
pub use tokens::*;
pub use traffic::*;

use crate::error::AppError;
use crate::model::{AuditPage, Flash, Me, Person};

#[cfg(feature = "ssr")]
use crate::backend::{
    accounts, audit, ctx, passwords, throttle, SessionAuth, SESSION_AUTH_KEY, SESSION_FLASH_KEY,
};
#[cfg(feature = "ssr")]
use crate::model::{normalize_org_name, normalize_username, validate_password, Role};

/// The one message for a failed sign-in, whether the name or the password
/// was wrong: it must not tell which.
pub const SIGN_IN_FAILED: &str = "The user name or password is incorrect.";

#[cfg(feature = "ssr")]
fn insert_err(e: tower_sessions::session::Error) -> AppError {
    AppError::internal(format!("session: {e}"))
}

#[cfg(feature = "ssr")]
fn check_confirmation(password: &str, confirm: &str) -> Result<(), AppError> {
    if password != confirm {
        return Err(AppError::invalid("The two passwords do not match."));
    }
    Ok(())
}

#[cfg(feature = "ssr")]
async fn start_session(user_id: i64, epoch: i64) -> Result<(), AppError> {
    let session = ctx::session()?;
    // A new id at every sign-in: an id planted before sign-in is worthless.
    session.cycle_id().await.map_err(insert_err)?;
    session
        .insert(SESSION_AUTH_KEY, SessionAuth { user_id, epoch })
        .await
        .map_err(insert_err)
}

/// Who is signed in, if anyone.
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<Me>, AppError> {
    Ok(ctx::signed_in().ok())
}

/// Whether first-run setup is still to be done. The setup page shows its
/// form only then, and "not found" after (as the server renders it, so the
/// hydrated page agrees).
#[server(endpoint = "setup_needed")]
pub async fn setup_needed() -> Result<bool, AppError> {
    Ok(!ctx::state()?.is_set_up().await?)
}

/// First-run setup: creates the ISP's organization and its administrator,
/// and signs the administrator in.
#[server(endpoint = "setup")]
pub async fn setup(
    setup_code: String,
    org_name: String,
    username: String,
    password: String,
    password_confirm: String,
) -> Result<(), AppError> {
    let state = ctx::state()?;
    if state.is_set_up().await? {
        return Err(AppError::Conflict(
            "This portal is already set up. Sign in instead.".into(),
        ));
    }
    if !constant_time_eq(setup_code.trim().as_bytes(), state.setup_code.as_bytes()) {
        return Err(AppError::invalid(
            "The setup code is wrong. It is printed in the portal's log when it starts.",
        ));
    }
    let org_name = normalize_org_name(&org_name)?;
    let username = normalize_username(&username)?;
    validate_password(&password, "The password")?;
    check_confirmation(&password, &password_confirm)?;
    let hash = passwords::hash(password).await?;
    let (_, user_id) = accounts::create_org(
        &state.db,
        accounts::NewOrg {
            org_name: &org_name,
            admin_username: &username,
            admin_password_hash: &hash,
            must_change_password: false,
            is_first_run: true,
        },
        &ctx::client_addr(),
    )
    .await?;
    start_session(user_id, 0).await?;
    leptos_axum::redirect("/");
    Ok(())
}

#[cfg(feature = "ssr")]
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[server(endpoint = "login")]
pub async fn login(username: String, password: String) -> Result<(), AppError> {
    let state = ctx::state()?;
    let db = &state.db;
    let client = ctx::client_addr();
    // A malformed name cannot exist, but it is answered and counted exactly
    // like a wrong password.
    let name = normalize_username(&username).unwrap_or_else(|_| username.trim().to_lowercase());
    throttle::check(db, &name, &client).await?;
    let account = if password.len() <= crate::model::MAX_PASSWORD_LEN {
        accounts::find_for_login(db, &name).await?
    } else {
        None
    };
    let verified =
        passwords::verify(password, account.as_ref().map(|a| a.password_hash.clone())).await?;
    let Some(account) = account.filter(|_| verified) else {
        throttle::record_failure(db, &name, &client).await?;
        if let Some(known) = accounts::find_for_login(db, &name).await? {
            let actor = audit::Actor {
                user_id: Some(known.user_id),
                name: name.clone(),
                client_addr: client,
            };
            audit::record(
                &db.pool,
                known.org_id,
                &actor,
                "auth.login_failed",
                "sign-in failed: wrong password",
            )
            .await?;
        }
        return Err(AppError::invalid(SIGN_IN_FAILED));
    };
    throttle::clear_account(db, &name).await?;
    start_session(account.user_id, account.session_epoch).await?;
    let me = accounts::load_me(db, account.user_id, account.session_epoch)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let actor = audit::Actor {
        user_id: Some(me.user_id),
        name: me.username.clone(),
        client_addr: client,
    };
    audit::record(&db.pool, me.org_id, &actor, "auth.login", "signed in").await?;
    leptos_axum::redirect(if me.must_change_password {
        "/account/password"
    } else {
        "/"
    });
    Ok(())
}

#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let state = ctx::state()?;
    if let Ok(me) = ctx::signed_in() {
        audit::record(
            &state.db.pool,
            me.org_id,
            &ctx::actor(&me),
            "auth.logout",
            "signed out",
        )
        .await?;
    }
    ctx::session()?.flush().await.map_err(insert_err)?;
    leptos_axum::redirect("/login");
    Ok(())
}

#[server(endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
    new_password_confirm: String,
) -> Result<(), AppError> {
    let state = ctx::state()?;
    let me = ctx::signed_in()?;
    validate_password(&new_password, "The new password")?;
    check_confirmation(&new_password, &new_password_confirm)?;
    if new_password == current_password {
        return Err(AppError::invalid(
            "The new password must differ from the current one.",
        ));
    }
    let stored = accounts::password_hash(&state.db, me.user_id).await?;
    if !passwords::verify(current_password, Some(stored)).await? {
        return Err(AppError::invalid("The current password is incorrect."));
    }
    let hash = passwords::hash(new_password).await?;
    let epoch =
        accounts::set_own_password(&state.db, &ctx::actor(&me), me.org_id, me.user_id, &hash)
            .await?;
    start_session(me.user_id, epoch).await?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server(endpoint = "people")]
pub async fn list_people() -> Result<Vec<Person>, AppError> {
    let me = ctx::require(|_| true, "see people")?;
    accounts::list_people(&ctx::state()?.db, me.org_id).await
}

#[server(endpoint = "add_person")]
pub async fn add_person(
    username: String,
    role: String,
    temporary_password: String,
) -> Result<(), AppError> {
    let me = ctx::require(Role::can_manage_people, "manage people")?;
    let username = normalize_username(&username)?;
    let role: Role = role.parse()?;
    validate_password(&temporary_password, "The temporary password")?;
    let hash = passwords::hash(temporary_password).await?;
    accounts::add_person(
        &ctx::state()?.db,
        &ctx::actor(&me),
        me.org_id,
        &username,
        role,
        &hash,
    )
    .await?;
    Ok(())
}

#[server(endpoint = "change_role")]
pub async fn change_role(user_id: i64, role: String) -> Result<(), AppError> {
    let me = ctx::require(Role::can_manage_people, "manage people")?;
    let role: Role = role.parse()?;
    accounts::change_role(
        &ctx::state()?.db,
        &ctx::actor(&me),
        me.org_id,
        user_id,
        role,
    )
    .await
}

#[server(endpoint = "reset_password")]
pub async fn reset_password(user_id: i64, temporary_password: String) -> Result<(), AppError> {
    let me = ctx::require(Role::can_manage_people, "manage people")?;
    validate_password(&temporary_password, "The temporary password")?;
    let hash = passwords::hash(temporary_password).await?;
    accounts::reset_password(
        &ctx::state()?.db,
        &ctx::actor(&me),
        me.org_id,
        user_id,
        &hash,
    )
    .await
}

#[server(endpoint = "remove_person")]
pub async fn remove_person(user_id: i64) -> Result<(), AppError> {
    let me = ctx::require(Role::can_manage_people, "manage people")?;
    accounts::remove_person(&ctx::state()?.db, &ctx::actor(&me), me.org_id, user_id).await
}

#[server(endpoint = "audit_log")]
pub async fn audit_log(older_than: Option<i64>) -> Result<AuditPage, AppError> {
    let me = ctx::require(Role::can_manage_people, "read the audit log")?;
    audit::page(&ctx::state()?.db, me.org_id, older_than).await
}

/// What a form post left for the next page, when the browser runs without
/// JavaScript (see the server's form fallback). Read once.
#[server(endpoint = "flash")]
pub async fn take_flash() -> Result<Flash, AppError> {
    let flash = ctx::session()?
        .remove::<Flash>(SESSION_FLASH_KEY)
        .await
        .map_err(insert_err)?;
    Ok(flash.unwrap_or_default())
}
