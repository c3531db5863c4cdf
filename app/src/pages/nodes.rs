//! Nodes: the list, a new node, and one node's page with its settings,
//! routing and provisioning.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::{
    format_bytes, format_time, use_flash, use_hydrated, use_me, ActionError, ErrorMessage, Refill,
};
use crate::api::*;
use crate::error::AppError;
use crate::model::{ConfigState, IssuedKey, Me, NodeDetail, NodeState, RoutingMode};

fn state_badge(state: NodeState) -> impl IntoView {
    let class = match state {
        NodeState::Online => "badge good",
        NodeState::Offline => "badge bad",
        NodeState::Disabled => "badge muted",
        NodeState::NeverConnected => "badge muted",
    };
    view! { <span class=class>{state.label()}</span> }
}

fn config_badge(state: ConfigState) -> impl IntoView {
    let class = match state {
        ConfigState::Applied => "badge good",
        ConfigState::Failed => "badge bad",
        ConfigState::Pending => "badge muted",
    };
    view! { <span class=class>{state.label()}</span> }
}

/// Renders a page body that needs the signed-in person, or the error.
fn with_me(me: Result<Option<Me>, AppError>, body: impl FnOnce(Me) -> AnyView) -> AnyView {
    match me {
        Ok(Some(me)) => body(me),
        Ok(None) => view! { <ErrorMessage error=AppError::Unauthenticated/> }.into_any(),
        Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
    }
}

#[component]
pub fn NodesPage() -> impl IntoView {
    let me_resource = use_me();
    let nodes = Resource::new(|| (), |_| list_nodes());
    view! {
        <Title text="Nodes"/>
        <h1>"Nodes"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let me = me_resource.await;
                let nodes = nodes.await;
                with_me(me, move |me| match nodes {
                    Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
                    Ok(nodes) => view! {
                        {if nodes.is_empty() {
                            view! { <p>"No nodes yet."</p> }.into_any()
                        } else {
                            view! {
                                <table class="nodes">
                                    <thead>
                                        <tr>
                                            <th>"Name"</th><th>"Address"</th><th>"Routing"</th><th>"State"</th>
                                            <th>"Agent"</th><th>"Config"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {nodes.into_iter().map(|n| view! {
                                            <tr data-node=n.name.clone()>
                                                <td><a href=format!("/nodes/{}", n.name)>{n.name.clone()}</a></td>
                                                <td>{n.public_ipv4}</td>
                                                <td>{n.routing_mode.label()}</td>
                                                <td class="state">{state_badge(n.state)}
                                                    {n.draining.then(|| view! { " " <span class="badge muted">"draining"</span> })}
                                                </td>
                                                <td>{n.agent_version.unwrap_or_else(|| "—".into())}</td>
                                                <td class="config">{config_badge(n.config_state)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                        {me.role.can_operate().then(|| view! { <p><a class="button" href="/nodes/new">"Add a node"</a></p> })}
                    }.into_any(),
                })
            })}
        </Suspense>
    }
}

const HOSTS_HINT: &str = "The node caches the known Windows Update, Office, Xbox and Edge hosts. \
    Add other content hosts here, one a line; *.example.net also covers example.net.";

const DRIVES_HINT: &str =
    "One drive a line: a folder and its size in GB, such as /var/cache/lastmile 500.";

#[component]
pub fn NewNodePage() -> impl IntoView {
    let me_resource = use_me();
    let flash = use_flash();
    view! {
        <Title text="Add a node"/>
        <h1>"Add a node"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let _ = flash.await;
                with_me(me_resource.await, |me| {
                    // Like every other page, no form for what the role
                    // cannot do (the server refuses it anyway).
                    if me.role.can_operate() {
                        view! { <NewNodeForm/> }.into_any()
                    } else {
                        view! { <p class="hint">"Only operators and administrators can add nodes."</p> }.into_any()
                    }
                })
            })}
        </Suspense>
    }
}

#[component]
fn NewNodeForm() -> impl IntoView {
    let create = ServerAction::<CreateNode>::new();
    let refill = Refill::of::<CreateNode>();
    view! {
        <ActionForm action=create attr:class="stack" attr:id="new-node">
            <label>"Name (letters and digits; fixed once created)"
                <input name="name" required maxlength="63" pattern="[A-Za-z0-9]+" autocomplete="off" value=refill.text("name", "")/>
            </label>
            <label>"Public IPv4 address of the server" <input name="public_ipv4" required placeholder="203.0.113.10" value=refill.text("public_ipv4", "")/></label>
            <label>"Maximum egress (Mbps)" <input name="max_egress_mbps" required inputmode="numeric" value=refill.text("max_egress_mbps", "1000")/></label>
            <label class="check"><input type="checkbox" name="enabled" value="on" checked=refill.checked("enabled", true)/> "Enabled"</label>
            <label>"Cache drives"
                <textarea name="drives" rows="3" required placeholder="/var/cache/lastmile 500">{refill.text("drives", "")}</textarea>
                <span class="hint">{DRIVES_HINT}</span>
            </label>
            <label>"Added content hosts (optional)"
                <textarea name="extra_hosts" rows="2" placeholder="updates.example.net">{refill.text("extra_hosts", "")}</textarea>
                <span class="hint">{HOSTS_HINT}</span>
            </label>
            <button type="submit">"Create node"</button>
        </ActionForm>
        <ActionError action=create/>
    }
}

#[component]
pub fn NodePage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.with(|p| p.get("name").unwrap_or_default());
    let me_resource = use_me();
    let update = ServerAction::<UpdateNode>::new();
    let enable = ServerAction::<SetNodeEnabled>::new();
    let drain = ServerAction::<SetNodeDraining>::new();
    let delete = ServerAction::<DeleteNode>::new();
    let manual = ServerAction::<SaveManualRouting>::new();
    let bgp = ServerAction::<SaveBgp>::new();
    let mode = ServerAction::<SetRoutingMode>::new();
    let issue = ServerAction::<IssueRegistrationKey>::new();
    let node = Resource::new(
        move || {
            (
                name(),
                update.version().get(),
                enable.version().get(),
                drain.version().get(),
                manual.version().get(),
                bgp.version().get(),
                mode.version().get(),
                issue.version().get(),
            )
        },
        |(name, ..)| get_node(name),
    );
    let pending_key = Resource::new(name, take_issued_key);
    let traffic = super::traffic::use_traffic(move || Some(name()));
    let flash = use_flash();
    view! {
        <Title text=move || format!("Node {}", name())/>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let _ = flash.await;
                let me = me_resource.await;
                let node = node.await;
                let pending_key = pending_key.await.ok().flatten();
                with_me(me, move |me| match node {
                    Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
                    Ok(node) => {
                        let can_edit = me.role.can_operate();
                        view! {
                            <NodeStatus node=node.clone()/>
                            <super::traffic::TrafficSection traffic path=format!("/nodes/{}", node.summary.name)/>
                            <NodeSettings node=node.clone() can_edit update enable drain/>
                            <NodeRouting node=node.clone() can_edit manual bgp mode/>
                            <NodeProvisioning node=node.clone() can_edit issue pending_key/>
                            {can_edit.then(|| view! { <DeleteNodeForm name=node.summary.name.clone() delete/> })}
                        }.into_any()
                    }
                })
            })}
        </Suspense>
    }
}

#[component]
fn NodeStatus(node: NodeDetail) -> impl IntoView {
    let s = node.summary;
    let health = node.health;
    let totals = node.totals;
    let served = totals.hit_bytes + totals.miss_bytes;
    let efficiency =
        (served > 0).then(|| format!("{:.1} %", totals.hit_bytes as f64 * 100.0 / served as f64));
    let reported = s.agent_version.is_some() && health.data_port.is_some();
    view! {
        <h1>"Node " {s.name.clone()}</h1>
        <dl class="facts">
            <dt>"State"</dt>
            <dd class="state">
                {state_badge(s.state)}
                {s.draining.then(|| view! { " " <span class="badge muted">"draining"</span> " (takes no new clients)" })}
            </dd>
            <dt>"Configuration"</dt>
            <dd class="config">
                {config_badge(s.config_state)} " (version " {s.config_version} ")"
                {s.apply_error.map(|e| view! { <span class="error-text">" — " {e}</span> })}
            </dd>
            <dt>"Agent"</dt>
            <dd>
                {match (s.agent_version, node.agent_hostname) {
                    (Some(v), Some(h)) => format!("{v} on {h}"),
                    (Some(v), None) => v,
                    _ => "no agent has registered yet".to_string(),
                }}
            </dd>
            <dt>"Last report"</dt>
            <dd>{s.last_seen_at_ms.map(format_time).unwrap_or_else(|| "never".into())}</dd>
            {reported.then(|| view! {
                <dt>"Serving"</dt>
                <dd class="serving">
                    {if health.serving { "yes" } else { "no" }}
                    {health.data_port.map(|port| format!(" — subscribers download from http://{}{}", s.public_ipv4,
                        if port == 80 { String::new() } else { format!(":{port}") }))}
                </dd>
            })}
            <dt>"Problems"</dt>
            <dd class="problems">
                {if health.problems.is_empty() {
                    view! { "none reported" }.into_any()
                } else {
                    view! { <ul class="plain">{health.problems.into_iter().map(|p| view! { <li class="error-text">{p}</li> }).collect_view()}</ul> }.into_any()
                }}
            </dd>
            {(!health.drives.is_empty()).then(|| view! {
                <dt>"Drive use"</dt>
                <dd><ul class="plain drives">{health.drives.into_iter().map(|d| view! {
                    <li>{d.path} ": " {format_bytes(d.used_bytes)} " of " {format_bytes(d.quota_bytes)}</li>
                }).collect_view()}</ul></dd>
            })}
            <dt>"Traffic so far"</dt>
            <dd class="totals">
                {format_bytes(served.max(0) as u64)} " served, " {format_bytes(totals.hit_bytes.max(0) as u64)} " from cache"
                {efficiency.map(|e| format!(" (efficiency {e})"))} ", "
                {format_bytes(totals.origin_bytes.max(0) as u64)} " fetched from origins, "
                {totals.requests} " requests, " {totals.errors} " errors"
            </dd>
        </dl>
    }
}

#[component]
fn NodeSettings(
    node: NodeDetail,
    can_edit: bool,
    update: ServerAction<UpdateNode>,
    enable: ServerAction<SetNodeEnabled>,
    drain: ServerAction<SetNodeDraining>,
) -> impl IntoView {
    let s = node.summary.clone();
    let hosts_text = node.extra_hosts.join("\n");
    let hosts_list = if node.extra_hosts.is_empty() {
        "none (only the known content hosts)".to_string()
    } else {
        node.extra_hosts.join(", ")
    };
    let drives_text = node
        .drives
        .iter()
        .map(|d| format!("{} {}", d.path, d.size_gb))
        .collect::<Vec<_>>()
        .join("\n");
    let rows = node.drives.len().max(2).to_string();
    let refill = Refill::of::<UpdateNode>();
    view! {
        <h2>"Settings"</h2>
        {if can_edit {
            let name = s.name.clone();
            let name_for_toggle = s.name.clone();
            let name_for_drain = s.name.clone();
            view! {
                <ActionForm action=update attr:class="stack" attr:id="node-settings">
                    <input type="hidden" name="name" value=name/>
                    <label>"Public IPv4 address" <input name="public_ipv4" required value=refill.text("public_ipv4", s.public_ipv4.clone())/></label>
                    <label>"Maximum egress (Mbps)" <input name="max_egress_mbps" required value=refill.text("max_egress_mbps", s.max_egress_mbps.to_string())/></label>
                    <label class="check"><input type="checkbox" name="enabled" value="on" checked=refill.checked("enabled", s.enabled)/> "Enabled"</label>
                    <label>"Cache drives"
                        <textarea name="drives" rows=rows required>{refill.text("drives", drives_text)}</textarea>
                        <span class="hint">{DRIVES_HINT}</span>
                    </label>
                    <label>"Added content hosts"
                        <textarea name="extra_hosts" rows="2">{refill.text("extra_hosts", hosts_text)}</textarea>
                        <span class="hint">{HOSTS_HINT}</span>
                    </label>
                    <button type="submit">"Save settings"</button>
                </ActionForm>
                <ActionError action=update/>
                <ActionForm action=enable attr:class="inline" attr:id="toggle-enabled">
                    <input type="hidden" name="name" value=name_for_toggle/>
                    <input type="hidden" name="enabled" value=(!s.enabled).to_string()/>
                    <button type="submit">{if s.enabled { "Disable node" } else { "Enable node" }}</button>
                </ActionForm>
                <ActionError action=enable/>
                <ActionForm action=drain attr:class="inline" attr:id="toggle-draining">
                    <input type="hidden" name="name" value=name_for_drain/>
                    <input type="hidden" name="draining" value=(!s.draining).to_string()/>
                    <button type="submit">{if s.draining { "Stop draining" } else { "Drain (no new clients)" }}</button>
                </ActionForm>
                <ActionError action=drain/>
            }.into_any()
        } else {
            view! {
                <dl class="facts">
                    <dt>"Public IPv4 address"</dt><dd>{s.public_ipv4.clone()}</dd>
                    <dt>"Maximum egress"</dt><dd>{s.max_egress_mbps} " Mbps"</dd>
                    <dt>"Enabled"</dt><dd>{if s.enabled { "yes" } else { "no" }}</dd>
                    <dt>"Draining"</dt><dd>{if s.draining { "yes" } else { "no" }}</dd>
                    <dt>"Added content hosts"</dt><dd>{hosts_list}</dd>
                    <dt>"Cache drives"</dt>
                    <dd><ul class="plain">{node.drives.into_iter().map(|d| view! { <li>{d.path} " — " {d.size_gb} " GB"</li> }).collect_view()}</ul></dd>
                </dl>
            }.into_any()
        }}
    }
}

#[component]
fn NodeRouting(
    node: NodeDetail,
    can_edit: bool,
    manual: ServerAction<SaveManualRouting>,
    bgp: ServerAction<SaveBgp>,
    mode: ServerAction<SetRoutingMode>,
) -> impl IntoView {
    let name = node.summary.name.clone();
    let (name_mode, name_manual, name_bgp) = (name.clone(), name.clone(), name.clone());
    let current = node.summary.routing_mode;
    let other = match current {
        RoutingMode::Manual => RoutingMode::Bgp,
        RoutingMode::Bgp => RoutingMode::Manual,
    };
    let prefixes_text = node
        .manual_prefixes
        .iter()
        .map(|p| p.prefix.clone())
        .collect::<Vec<_>>()
        .join("\n");
    let neighbors_text = node
        .bgp_neighbors
        .iter()
        .map(|n| format!("{} {}", n.address, n.asn))
        .collect::<Vec<_>>()
        .join("\n");
    let refill_manual = Refill::of::<SaveManualRouting>();
    let prefixes_text = refill_manual.text("prefixes", prefixes_text);
    let refill_bgp = Refill::of::<SaveBgp>();
    let asn_text = refill_bgp.text(
        "asn",
        node.bgp_asn.map(|a| a.to_string()).unwrap_or_default(),
    );
    let neighbors_text = refill_bgp.text("neighbors", neighbors_text);
    let block_list = view! {
        <ul class="prefixes">
            {node.manual_prefixes.iter().map(|p| {
                let shared = (!p.shared_with.is_empty()).then(|| format!(" — shared with {}", p.shared_with.join(", ")));
                view! { <li><code>{p.prefix.clone()}</code>{shared}</li> }
            }).collect_view()}
        </ul>
    };
    view! {
        <h2>"Routing"</h2>
        <p class="routing-mode">"Mode: " <strong>{current.label()}</strong>
            {match current {
                RoutingMode::Manual => " — the node serves the subscribers in the blocks below.",
                RoutingMode::Bgp => " — the node serves the prefixes it learns from the routers below.",
            }}
        </p>
        {can_edit.then(|| view! {
            <ActionForm action=mode attr:class="inline" attr:id="switch-mode">
                <input type="hidden" name="name" value=name_mode.clone()/>
                <input type="hidden" name="mode" value=other.as_str()/>
                <button type="submit">"Switch to " {other.label()} " routing"</button>
            </ActionForm>
            <ActionError action=mode/>
        })}

        <h3>"Manual CIDR blocks"</h3>
        {if node.manual_prefixes.is_empty() {
            view! { <p class="hint">"No blocks."</p> }.into_any()
        } else {
            block_list.into_any()
        }}
        {can_edit.then(|| view! {
            <ActionForm action=manual attr:class="stack" attr:id="manual-routing">
                <input type="hidden" name="name" value=name_manual.clone()/>
                <label>"IPv4 CIDR blocks, one a line or separated by commas"
                    <textarea name="prefixes" rows="6" placeholder="203.0.113.0/24">{prefixes_text}</textarea>
                </label>
                <button type="submit">"Save blocks"</button>
            </ActionForm>
            <ActionError action=manual/>
        })}

        <h3>"BGP"</h3>
        <dl class="facts">
            <dt>"Node ASN"</dt><dd>{node.bgp_asn.map(|a| a.to_string()).unwrap_or_else(|| "not set".into())}</dd>
            <dt>"Neighbors"</dt>
            <dd>
                {if node.bgp_neighbors.is_empty() {
                    view! { "none" }.into_any()
                } else {
                    view! { <ul class="plain neighbors">{node.bgp_neighbors.iter().map(|n| view! {
                        <li>{n.address.clone()} " (AS" {n.asn} ")"</li>
                    }).collect_view()}</ul> }.into_any()
                }}
            </dd>
            <dt>"Sessions"</dt>
            <dd>
                {if !node.health.bgp_sessions.is_empty() {
                    view! { <BgpSessions sessions=node.health.bgp_sessions.clone()/> }.into_any()
                } else if node.summary.agent_version.is_none() {
                    view! { "No agent has registered yet, so no BGP session has been reported." }.into_any()
                } else {
                    view! { "The agent has not reported any BGP session." }.into_any()
                }}
            </dd>
            <dt>"Learned prefixes"</dt>
            <dd class="learned">
                {node.learned.prefixes} " prefixes covering " {node.learned.addresses} " addresses"
                {(node.learned.prefixes > 0).then(|| view! {
                    " — " <a href=format!("/nodes/{}/learned-routes.json", node.summary.name) download="">"download as JSON"</a>
                })}
            </dd>
        </dl>
        {can_edit.then(|| view! {
            <ActionForm action=bgp attr:class="stack" attr:id="bgp-settings">
                <input type="hidden" name="name" value=name_bgp.clone()/>
                <label>"The node's ASN (2-byte or 4-byte)"
                    <input name="asn" required inputmode="numeric" value=asn_text.clone()/>
                </label>
                <label>"Neighbors: one router a line, its IPv4 address and ASN"
                    <textarea name="neighbors" rows="3" required placeholder="192.0.2.1 64512">{neighbors_text}</textarea>
                </label>
                <button type="submit">"Save BGP settings"</button>
            </ActionForm>
            <ActionError action=bgp/>
        })}
    }
}

#[component]
fn BgpSessions(sessions: Vec<lastmile_wire::BgpSession>) -> impl IntoView {
    view! {
        <table class="bgp-sessions">
            <thead><tr><th>"Neighbor"</th><th>"ASN"</th><th>"State"</th><th>"Since"</th><th>"Prefixes"</th><th>"Last error"</th></tr></thead>
            <tbody>
                {sessions.into_iter().map(|s| {
                    let class = if s.state == "Established" { "badge good" } else { "badge bad" };
                    let neighbor = s.neighbor.clone();
                    view! {
                        <tr data-neighbor=neighbor>
                            <td>{s.neighbor}</td>
                            <td>{s.asn}</td>
                            <td><span class=class>{s.state}</span></td>
                            <td>{s.established_at_ms.map(format_time).unwrap_or_else(|| "—".into())}</td>
                            <td>{s.prefixes}</td>
                            <td>{s.last_error.unwrap_or_default()}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn IssuedKeyView(issued: IssuedKey) -> impl IntoView {
    let hydrated = use_hydrated();
    let (copied, set_copied) = signal(false);
    let command = issued.install_command.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let clipboard = window().navigator().clipboard();
            let _ = clipboard.write_text(&command);
            set_copied.set(true);
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = &command;
            set_copied.set(true);
        }
    };
    view! {
        <div class="issued-key">
            <p>
                "Run this on the server, as a user who may use sudo. The key in it works once and expires "
                {format_time(issued.expires_at_ms)} ". It is shown only now."
            </p>
            // A read-only field rather than plain text: without JavaScript
            // (no copy button) a click and Ctrl+A select exactly the command.
            <textarea class="command" id="install-command" aria-label="Install command" readonly rows="4">{issued.install_command.clone()}</textarea>
            <Show when=move || hydrated.get()>
                <button type="button" class="copy" on:click=copy.clone()>
                    {move || if copied.get() { "Copied" } else { "Copy command" }}
                </button>
            </Show>
        </div>
    }
}

#[component]
fn NodeProvisioning(
    node: NodeDetail,
    can_edit: bool,
    issue: ServerAction<IssueRegistrationKey>,
    pending_key: Option<IssuedKey>,
) -> impl IntoView {
    let name = node.summary.name.clone();
    let key_status = match node.registration_key {
        None => "No registration key has been issued.".to_string(),
        Some(k) => match k.used_at_ms {
            Some(used) => format!(
                "The last key (issued by {} at {}) was used at {}.",
                k.created_by,
                format_time(k.created_at_ms),
                format_time(used)
            ),
            None => format!(
                "A key issued by {} at {} is unused; it expires {}.",
                k.created_by,
                format_time(k.created_at_ms),
                format_time(k.expires_at_ms)
            ),
        },
    };
    // The portal also keeps a fresh key in the session, for the page a form
    // posted without JavaScript is redirected to. The hydrated page shows
    // the key in place, so it takes that copy at once: otherwise the key
    // would show again at the next visit, though "shown only now".
    let node_name = name.clone();
    Effect::new(move |_| {
        if let Some(Ok(_)) = issue.value().get() {
            let node_name = node_name.clone();
            leptos::task::spawn_local(async move {
                let _ = take_issued_key(node_name).await;
            });
        }
    });
    let fresh = move || {
        issue
            .value()
            .get()
            .and_then(Result::ok)
            .or_else(|| pending_key.clone())
            .map(|issued| view! { <IssuedKeyView issued/> })
    };
    view! {
        <h2>"Provisioning"</h2>
        <p class="key-status">{key_status}</p>
        {can_edit.then(|| view! {
            <ActionForm action=issue attr:class="inline" attr:id="issue-key">
                <input type="hidden" name="name" value=name.clone()/>
                <button type="submit">"Issue registration key"</button>
            </ActionForm>
            <p class="hint">"Issuing a new key revokes any unused earlier one."</p>
            <ActionError action=issue/>
            {fresh}
        })}
    }
}

#[component]
fn DeleteNodeForm(name: String, delete: ServerAction<DeleteNode>) -> impl IntoView {
    let refill = Refill::of::<DeleteNode>();
    view! {
        <h2>"Delete"</h2>
        <ActionForm action=delete attr:class="stack" attr:id="delete-node">
            <input type="hidden" name="name" value=name.clone()/>
            <label>"Type the node's name to delete it and its routing"
                <input name="confirm_name" required autocomplete="off" placeholder=name value=refill.text("confirm_name", "")/>
            </label>
            <button type="submit" class="danger">"Delete node"</button>
        </ActionForm>
        <ActionError action=delete/>
    }
}
