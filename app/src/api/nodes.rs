//! Server functions for nodes, their routing and their provisioning.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{IssuedKey, NodeDetail, NodeSummary, SteerExplanation};

#[cfg(feature = "ssr")]
use crate::backend::{ctx, nodes, nodes::NodeSettings, SESSION_ISSUED_KEY};
#[cfg(feature = "ssr")]
use crate::model::{Me, Role};
#[cfg(feature = "ssr")]
use crate::validate;

#[cfg(feature = "ssr")]
fn operator() -> Result<Me, AppError> {
    ctx::require(Role::can_operate, "change nodes or routing")
}

#[cfg(feature = "ssr")]
fn reader() -> Result<Me, AppError> {
    ctx::require(|_| true, "see nodes")
}

/// Parses the node settings form: the same rules for the portal's forms and
/// the JSON API.
#[cfg(feature = "ssr")]
pub fn parse_settings(
    public_ipv4: &str,
    max_egress_mbps: &str,
    enabled: bool,
    drives: &str,
    extra_hosts: &str,
) -> Result<NodeSettings, AppError> {
    Ok(NodeSettings {
        public_ipv4: validate::ipv4_address(public_ipv4, "public IPv4 address")?,
        max_egress_mbps: validate::egress_mbps(max_egress_mbps)?,
        enabled,
        drives: validate::drives(drives)?,
        extra_hosts: validate::extra_hosts(extra_hosts)?,
    })
}

#[cfg(feature = "ssr")]
fn offline_after_ms() -> Result<i64, AppError> {
    Ok(ctx::state()?.settings.offline_after_ms())
}

/// A checkbox posts its value when ticked and nothing when not.
#[cfg(feature = "ssr")]
fn ticked(checkbox: &Option<String>) -> bool {
    checkbox
        .as_deref()
        .is_some_and(|v| !v.is_empty() && v != "false" && v != "off")
}

#[server(endpoint = "nodes")]
pub async fn list_nodes() -> Result<Vec<NodeSummary>, AppError> {
    let me = reader()?;
    nodes::list(&ctx::state()?.db, me.org_id, offline_after_ms()?).await
}

#[server(endpoint = "node")]
pub async fn get_node(name: String) -> Result<NodeDetail, AppError> {
    let me = reader()?;
    nodes::detail(&ctx::state()?.db, me.org_id, &name, offline_after_ms()?).await
}

#[server(endpoint = "create_node")]
pub async fn create_node(
    name: String,
    public_ipv4: String,
    max_egress_mbps: String,
    enabled: Option<String>,
    drives: String,
    #[server(default)] extra_hosts: String,
) -> Result<(), AppError> {
    let me = operator()?;
    let name = validate::node_name(&name)?;
    let settings = parse_settings(
        &public_ipv4,
        &max_egress_mbps,
        ticked(&enabled),
        &drives,
        &extra_hosts,
    )?;
    nodes::create(
        &ctx::state()?.db,
        &ctx::actor(&me),
        me.org_id,
        &name,
        &settings,
    )
    .await?;
    leptos_axum::redirect(&format!("/nodes/{name}"));
    Ok(())
}

#[server(endpoint = "update_node")]
pub async fn update_node(
    name: String,
    public_ipv4: String,
    max_egress_mbps: String,
    enabled: Option<String>,
    drives: String,
    #[server(default)] extra_hosts: String,
) -> Result<(), AppError> {
    let me = operator()?;
    let settings = parse_settings(
        &public_ipv4,
        &max_egress_mbps,
        ticked(&enabled),
        &drives,
        &extra_hosts,
    )?;
    nodes::update(
        &ctx::state()?.db,
        &ctx::actor(&me),
        me.org_id,
        &name,
        &settings,
    )
    .await
}

#[server(endpoint = "set_node_enabled")]
pub async fn set_node_enabled(name: String, enabled: bool) -> Result<(), AppError> {
    let me = operator()?;
    nodes::set_enabled(
        &ctx::state()?.db,
        &ctx::actor(&me),
        me.org_id,
        &name,
        enabled,
    )
    .await
}

#[server(endpoint = "set_node_draining")]
pub async fn set_node_draining(name: String, draining: bool) -> Result<(), AppError> {
    let me = operator()?;
    let state = ctx::state()?;
    nodes::set_draining(&state.db, &ctx::actor(&me), me.org_id, &name, draining).await?;
    state.steering.wake();
    Ok(())
}

/// "Where does this subscriber go, and why?" for an address typed into the
/// portal.
#[server(endpoint = "explain_steering")]
pub async fn explain_steering(client: String) -> Result<SteerExplanation, AppError> {
    let me = reader()?;
    let client = validate::ipv4_address(&client, "subscriber address")?;
    let state = ctx::state()?;
    Ok(state.steering.explain(client, me.org_id))
}

/// Deleting asks for the node's name again: a slip of the mouse must not
/// take a node out of service.
#[server(endpoint = "delete_node")]
pub async fn delete_node(name: String, confirm_name: String) -> Result<(), AppError> {
    let me = operator()?;
    if confirm_name.trim() != name {
        return Err(AppError::invalid(format!(
            "To delete the node, type its name \"{name}\" in the confirmation field."
        )));
    }
    let state = ctx::state()?;
    nodes::delete(&state.db, &ctx::actor(&me), me.org_id, &name).await?;
    state.steering.wake();
    leptos_axum::redirect("/nodes");
    Ok(())
}

#[server(endpoint = "save_manual_routing")]
pub async fn save_manual_routing(name: String, prefixes: String) -> Result<(), AppError> {
    let me = operator()?;
    let blocks = validate::cidr_list(&prefixes)?;
    let state = ctx::state()?;
    nodes::set_manual_prefixes(&state.db, &ctx::actor(&me), me.org_id, &name, &blocks).await?;
    state.steering.wake();
    Ok(())
}

#[server(endpoint = "save_bgp")]
pub async fn save_bgp(name: String, asn: String, neighbors: String) -> Result<(), AppError> {
    let me = operator()?;
    let asn = validate::asn(&asn, "node's ASN")?;
    let neighbors = validate::neighbors(&neighbors)?;
    nodes::set_bgp(
        &ctx::state()?.db,
        &ctx::actor(&me),
        me.org_id,
        &name,
        asn,
        &neighbors,
    )
    .await
}

#[server(endpoint = "set_routing_mode")]
pub async fn set_routing_mode(name: String, mode: String) -> Result<(), AppError> {
    let me = operator()?;
    let mode = mode.parse()?;
    let state = ctx::state()?;
    nodes::set_routing_mode(&state.db, &ctx::actor(&me), me.org_id, &name, mode).await?;
    state.steering.wake();
    Ok(())
}

/// Issues a registration key for the node (revoking any earlier unused one)
/// and returns it with the command that installs and registers the agent.
#[server(endpoint = "issue_registration_key")]
pub async fn issue_registration_key(name: String) -> Result<IssuedKey, AppError> {
    let me = operator()?;
    let state = ctx::state()?;
    let (key, expires_at_ms) = nodes::issue_key(
        &state.db,
        &ctx::actor(&me),
        me.org_id,
        &name,
        state.settings.registration_key_ttl_ms,
    )
    .await?;
    let issued = IssuedKey {
        node: name,
        install_command: install_command(
            &ctx::portal_url()?,
            state.settings.tls_pin.as_deref(),
            &key,
        ),
        key,
        expires_at_ms,
    };
    // A browser without JavaScript is redirected back to the node's page;
    // the key waits in the session for that one view.
    ctx::session()?
        .insert(SESSION_ISSUED_KEY, issued.clone())
        .await
        .map_err(|e| AppError::internal(format!("session: {e}")))?;
    Ok(issued)
}

/// The key issued by the last form post, shown once.
#[server(endpoint = "take_issued_key")]
pub async fn take_issued_key(name: String) -> Result<Option<IssuedKey>, AppError> {
    let session = ctx::session()?;
    let issued: Option<IssuedKey> = session
        .get(SESSION_ISSUED_KEY)
        .await
        .map_err(|e| AppError::internal(format!("session: {e}")))?;
    match issued {
        Some(issued) if issued.node == name => {
            session
                .remove::<IssuedKey>(SESSION_ISSUED_KEY)
                .await
                .map_err(|e| AppError::internal(format!("session: {e}")))?;
            Ok(Some(issued))
        }
        _ => Ok(None),
    }
}

/// The one command an operator runs on a fresh Linux server. The key goes
/// through the environment (`sudo --preserve-env`), never onto a command
/// line that sudo would log. With a self-signed portal the command pins its
/// key, so even the first download cannot be intercepted.
pub fn install_command(portal: &str, pin: Option<&str>, key: &str) -> String {
    let env = lastmile_wire::REGISTRATION_KEY_ENV;
    let script = lastmile_wire::INSTALL_SCRIPT_PATH;
    match pin {
        Some(pin) => format!(
            "export {env}='{key}'; curl -fsS --insecure --pinnedpubkey '{pin}' {portal}{script} | \
             sudo --preserve-env={env} sh -s -- --portal {portal} --pin '{pin}'"
        ),
        None => format!(
            "export {env}='{key}'; curl -fsS {portal}{script} | sudo --preserve-env={env} sh -s -- --portal {portal}"
        ),
    }
}
