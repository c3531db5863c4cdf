//! "Where does this subscriber go, and why?": an operator types an address
//! and sees the node steering picks, the prefix that matched and where it
//! came from, and for each of their other nodes why it was not picked. A
//! plain GET form, so it works without JavaScript and the answer has a URL
//! to share.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use super::ErrorMessage;
use crate::api::*;
use crate::model::{SteerExplanation, SteerVerdict};

#[component]
pub fn SteeringPage() -> impl IntoView {
    let query = use_query_map();
    let client = move || query.with(|q| q.get("client").unwrap_or_default());
    let answer = Resource::new(client, |client| async move {
        if client.trim().is_empty() {
            None
        } else {
            Some(explain_steering(client).await)
        }
    });
    view! {
        <Title text="Steering"/>
        <h1>"Where does this subscriber go?"</h1>
        <p class="hint">
            "Steering sends each subscriber to a healthy node whose prefixes (manual or learned over BGP) contain its address, the most specific first; with none, to the CDN."
        </p>
        <Form method="GET" action="/steering" attr:class="inline" attr:id="steer-lookup">
            <label>"Subscriber IPv4 address " <input name="client" value=client required placeholder="203.0.113.45"/></label>
            <button type="submit">"Look up"</button>
        </Form>
        <Suspense fallback=|| view! { <p class="loading">"Looking up…"</p> }>
            {move || Suspend::new(async move {
                match answer.await {
                    None => ().into_any(),
                    Some(Err(e)) => view! { <ErrorMessage error=e/> }.into_any(),
                    Some(Ok(explained)) => view! { <Explanation explained/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Explanation(explained: SteerExplanation) -> impl IntoView {
    let matched = explained.prefix.clone().map(|prefix| {
        let source = explained.source.map(|s| s.label()).unwrap_or("");
        view! { " (prefix " <code>{prefix}</code> ", " {source} ")" }
    });
    let verdict = if let Some(node) = explained.chosen.clone() {
        view! {
            <p class="steer-answer" id="steer-answer">
                <strong>{explained.client.clone()}</strong> " downloads from node "
                <a href=format!("/nodes/{node}")><strong>{node.clone()}</strong></a>
                {explained.chosen_url.clone().map(|u| format!(" at {u}"))}
                {matched}
                "."
            </p>
        }
        .into_any()
    } else if explained.served_by_other_org {
        view! {
            <p class="steer-answer" id="steer-answer">
                <strong>{explained.client.clone()}</strong>
                " is served by a node of another organization on this portal."
            </p>
        }
        .into_any()
    } else {
        view! {
            <p class="steer-answer" id="steer-answer">
                "No healthy node serves " <strong>{explained.client.clone()}</strong>
                ": it downloads from the CDN."
            </p>
        }
        .into_any()
    };
    view! {
        {verdict}
        {if explained.candidates.is_empty() {
            view! { <p class="hint">"Your organization has no nodes."</p> }.into_any()
        } else {
            view! {
                <table class="steer-candidates">
                    <thead><tr><th>"Node"</th><th>"Matching prefix"</th><th>"Source"</th><th>"Verdict"</th></tr></thead>
                    <tbody>
                        {explained.candidates.into_iter().map(|c| {
                            let class = match c.verdict {
                                SteerVerdict::Chosen => "badge good",
                                SteerVerdict::Alternative | SteerVerdict::LessSpecific => "badge muted",
                                SteerVerdict::NoMatchingPrefix => "badge muted",
                                _ => "badge bad",
                            };
                            let node = c.node.clone();
                            view! {
                                <tr data-node=node>
                                    <td><a href=format!("/nodes/{}", c.node)>{c.node.clone()}</a></td>
                                    <td>{c.prefix.unwrap_or_else(|| "—".into())}</td>
                                    <td>{c.source.map(|s| s.as_str()).unwrap_or("—")}</td>
                                    <td><span class=class>{c.verdict.describe()}</span></td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            }
            .into_any()
        }}
    }
}
