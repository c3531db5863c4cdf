//! One's own API tokens for the JSON API.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{format_time, use_flash, ActionError, ErrorMessage, Refill};
use crate::api::*;

#[component]
pub fn TokensPage() -> impl IntoView {
    let create = ServerAction::<CreateApiToken>::new();
    let revoke = ServerAction::<RevokeApiToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_tokens(),
    );
    let flash = use_flash();
    view! {
        <Title text="API tokens"/>
        <h1>"API tokens"</h1>
        <p>
            "Programs use the JSON API under " <code>"/api/v1/"</code> " with a token, sent as "
            <code>"Authorization: Bearer TOKEN"</code> ". A token can do what your role can. "
            <a href="/api/v1/openapi.json">"The API's OpenAPI document"</a> "."
        </p>
        {move || create.value().get().and_then(Result::ok).map(|new| view! {
            <div class="issued-key">
                <p>"Your new token " <strong>{new.name}</strong> ". Copy it now: it is shown only once."</p>
                <pre class="command" id="new-token">{new.token}</pre>
            </div>
        })}
        <Suspense>
            {move || Suspend::new(async move {
                let _ = flash.await;
                let refill = Refill::of::<CreateApiToken>();
                view! {
                    <ActionForm action=create attr:class="inline" attr:id="create-token">
                        <input name="name" required placeholder="What uses it (e.g. provisioning)" aria-label="Token name" value=refill.text("name", "")/>
                        <button type="submit">"Create token"</button>
                    </ActionForm>
                }
            })}
        </Suspense>
        <ActionError action=create/>
        <ActionError action=revoke/>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match tokens.await {
                    Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="hint">"You have no API tokens."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="tokens">
                            <thead><tr><th>"Name"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|t| view! {
                                    <tr>
                                        <td>{t.name}</td>
                                        <td>{format_time(t.created_at_ms)}</td>
                                        <td>{t.last_used_at_ms.map(format_time).unwrap_or_else(|| "never".into())}</td>
                                        <td>
                                            <ActionForm action=revoke attr:class="inline">
                                                <input type="hidden" name="id" value=t.id.to_string()/>
                                                <button type="submit" class="danger">"Revoke"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
