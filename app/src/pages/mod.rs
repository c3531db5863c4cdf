//! The portal's pages. Each renders completely on the server (forms post
//! and redirect without JavaScript) and is hydrated in the browser, where
//! forms submit in place and show their result without a reload.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Outlet, ParentRoute, Route, Router, Routes, A};
use leptos_router::hooks::{use_location, use_query_map};
use leptos_router::{path, SsrMode};

mod nodes;
mod steering;
mod tokens;
mod traffic;

use crate::api::*;
use crate::error::AppError;
use crate::model::{Flash as FlashData, Me, Person, RefusedForm, Role, MIN_PASSWORD_LEN};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="lastmile" href="/pkg/lastmile.css"/>
        <Title formatter=|page: String| format!("{page} · Lastmile")/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/setup") view=SetupPage ssr=SsrMode::Async/>
                <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=Layout ssr=SsrMode::Async>
                    <Route path=path!("") view=HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/people") view=PeoplePage ssr=SsrMode::Async/>
                    <Route path=path!("/audit") view=AuditPage ssr=SsrMode::Async/>
                    <Route path=path!("/account/password") view=ChangePasswordPage ssr=SsrMode::Async/>
                    <Route path=path!("/account/tokens") view=tokens::TokensPage ssr=SsrMode::Async/>
                    <Route path=path!("/nodes") view=nodes::NodesPage ssr=SsrMode::Async/>
                    <Route path=path!("/nodes/new") view=nodes::NewNodePage ssr=SsrMode::Async/>
                    <Route path=path!("/nodes/:name") view=nodes::NodePage ssr=SsrMode::Async/>
                    <Route path=path!("/steering") view=steering::SteeringPage ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <main class="narrow">
            <h1>"Not found"</h1>
            <p>"There is no such page. " <a href="/">"Go to the start page"</a>"."</p>
        </main>
    }
}

/// True once the wasm bundle has taken over the page. Controls that only
/// work with JavaScript are shown only then, so nobody sees a dead button.
pub(crate) fn use_hydrated() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}

/// Shows an action's error, when its last run failed.
#[component]
pub(crate) fn ActionError<S>(action: ServerAction<S>) -> impl IntoView
where
    S: leptos::server_fn::ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    move || {
        action
            .value()
            .get()
            .and_then(|result| result.err())
            .map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
    }
}

#[component]
pub(crate) fn ErrorMessage(error: AppError) -> impl IntoView {
    let sign_in = matches!(error, AppError::Unauthenticated);
    view! {
        <p class="error" role="alert">
            {error.to_string()}
            {sign_in.then(|| view! { " " <a href="/login">"Sign in"</a> })}
        </p>
    }
}

/// What a form left behind when it was posted without JavaScript.
#[component]
pub(crate) fn Flash() -> impl IntoView {
    let flash = use_flash();
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                flash.await.ok().and_then(|f| f.message).map(|message| view! { <p class="error" role="alert">{message}</p> })
            })}
        </Suspense>
    }
}

/// What the last form post left for this page ([`take_flash`]). Reading it
/// removes it from the session, and a `Suspense`'s children are rendered
/// more than once on the server, so the one resource is made by the frame
/// around the pages (outside every `Suspense`) and shared from there. It is
/// asked again at every navigation, so nothing outlives its page.
#[derive(Clone, Copy)]
struct FlashResource(Resource<Result<FlashData, AppError>>);

fn provide_flash() {
    let location = use_location();
    let flash = Resource::new(move || location.pathname.get(), |_| take_flash());
    provide_context(FlashResource(flash));
}

/// The page's flash. A page with a form that can be refused awaits it in
/// its `Suspend` before it renders the form, so [`Refill::of`] finds it.
pub(crate) fn use_flash() -> Resource<Result<FlashData, AppError>> {
    expect_context::<FlashResource>().0
}

/// Puts back what was typed into a form that was refused without
/// JavaScript, so nothing is lost; with JavaScript the form never left
/// the page and keeps its input anyway.
pub(crate) struct Refill(Option<RefusedForm>);

impl Refill {
    /// For the form of server function `S`, on a page that has awaited
    /// [`use_flash`].
    pub(crate) fn of<S: leptos::server_fn::ServerFn>() -> Refill {
        let form = use_flash()
            .get_untracked()
            .and_then(Result::ok)
            .and_then(|flash| flash.form)
            .filter(|form| form.action == S::PATH);
        Refill(form)
    }

    /// The refused text of `field`, else `current`.
    pub(crate) fn text(&self, field: &str, current: impl Into<String>) -> String {
        match &self.0 {
            Some(form) => form.get(field).unwrap_or_default().to_string(),
            None => current.into(),
        }
    }

    /// Whether checkbox `field` was ticked in the refused post, else `current`.
    pub(crate) fn checked(&self, field: &str, current: bool) -> bool {
        match &self.0 {
            Some(form) => form.get(field).is_some(),
            None => current,
        }
    }
}

/// A password field with a "show" toggle once the page is hydrated.
#[component]
pub(crate) fn PasswordInput(
    name: &'static str,
    label: &'static str,
    #[prop(optional)] new_password: bool,
) -> impl IntoView {
    let hydrated = use_hydrated();
    let (visible, set_visible) = signal(false);
    let autocomplete = if new_password {
        "new-password"
    } else {
        "current-password"
    };
    let minlength = new_password.then_some(MIN_PASSWORD_LEN);
    view! {
        <label>
            {label}
            <span class="password">
                <input
                    type=move || if visible.get() { "text" } else { "password" }
                    name=name
                    required
                    minlength=minlength
                    autocomplete=autocomplete
                />
                <Show when=move || hydrated.get()>
                    <button type="button" class="reveal" on:click=move |_| set_visible.update(|v| *v = !*v)>
                        {move || if visible.get() { "Hide" } else { "Show" }}
                    </button>
                </Show>
            </span>
        </label>
    }
}

/// First-run setup, until it is done; then the page is gone.
#[component]
fn SetupPage() -> impl IntoView {
    let needed = Resource::new(|| (), |_| setup_needed());
    provide_flash();
    let flash = use_flash();
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                let _ = flash.await;
                match needed.await {
                    Ok(true) => view! { <SetupForm/> }.into_any(),
                    Ok(false) => view! { <NotFound/> }.into_any(),
                    Err(e) => view! { <main class="narrow"><ErrorMessage error=e/></main> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SetupForm() -> impl IntoView {
    let setup = ServerAction::<Setup>::new();
    let refill = Refill::of::<Setup>();
    view! {
        <Title text="Set up"/>
        <main class="narrow">
            <h1>"Set up Lastmile"</h1>
            <p>
                "Create your organization and its first administrator. The setup code is printed in the portal's log when it starts."
            </p>
            <Flash/>
            <ActionForm action=setup attr:class="stack">
                <label>"Setup code" <input name="setup_code" required autocomplete="off"/></label>
                <label>"Organization (your ISP)" <input name="org_name" required maxlength="100" value=refill.text("org_name", "")/></label>
                <label>"Administrator's user name" <input name="username" required autocomplete="username" value=refill.text("username", "")/></label>
                <PasswordInput name="password" label="Password" new_password=true/>
                <PasswordInput name="password_confirm" label="Password again" new_password=true/>
                <button type="submit">"Create organization"</button>
            </ActionForm>
            <ActionError action=setup/>
        </main>
    }
}

#[component]
fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    provide_flash();
    let flash = use_flash();
    view! {
        <Title text="Sign in"/>
        <main class="narrow">
            <h1>"Sign in to Lastmile"</h1>
            <Flash/>
            <Suspense>
                {move || Suspend::new(async move {
                    let _ = flash.await;
                    let refill = Refill::of::<Login>();
                    view! {
                        <ActionForm action=login attr:class="stack">
                            <label>"User name" <input name="username" required autocomplete="username" value=refill.text("username", "")/></label>
                            <PasswordInput name="password" label="Password"/>
                            <button type="submit">"Sign in"</button>
                        </ActionForm>
                    }
                })}
            </Suspense>
            <ActionError action=login/>
        </main>
    }
}

/// The frame around every signed-in page: who you are, where you can go.
#[component]
fn Layout() -> impl IntoView {
    let location = use_location();
    // Asked again at every navigation, so a sign-out or an expired session
    // shows at once.
    let me_resource = Resource::new(move || location.pathname.get(), |_| whoami());
    provide_flash();
    let logout = ServerAction::<Logout>::new();
    // Only the header waits for `whoami`. The page stays outside this
    // Transition: its children are rendered more than once on the server, and
    // a page made there would be made again each time, asking the database
    // again and taking its one-time messages (a form's error, a fresh
    // registration key) in a copy that is then thrown away. Pages check the
    // signed-in person themselves.
    view! {
        <Transition>
            {move || Suspend::new(async move {
                match me_resource.await {
                    Ok(Some(me)) => {
                        let admin = me.role.can_manage_people();
                        let ready = !me.must_change_password;
                        view! {
                            <header class="top">
                                <a class="brand" href="/">"Lastmile"</a>
                                <span class="org">{me.org_name.clone()}</span>
                                <nav>
                                    {ready.then(|| view! { <A href="/">"Overview"</A> <A href="/nodes">"Nodes"</A> <A href="/steering">"Steering"</A> <A href="/people">"People"</A> })}
                                    {(ready && admin).then(|| view! { <A href="/audit">"Audit log"</A> })}
                                    {ready.then(|| view! { <A href="/account/tokens">"API tokens"</A> })}
                                    <A href="/account/password">"Password"</A>
                                </nav>
                                <span class="who">{me.username.clone()} " (" {me.role.as_str()} ")"</span>
                                <ActionForm action=logout attr:class="inline">
                                    <button type="submit" class="link">"Sign out"</button>
                                </ActionForm>
                            </header>
                        }
                        .into_any()
                    }
                    // Signed out: the page below says so.
                    Ok(None) => ().into_any(),
                    Err(e) => view! { <header class="top"><ErrorMessage error=e/></header> }.into_any(),
                }
            })}
        </Transition>
        <main>
            <Flash/>
            <Outlet/>
        </main>
    }
}

/// The signed-in person, for pages inside the layout.
pub(crate) fn use_me() -> Resource<Result<Option<Me>, AppError>> {
    Resource::new(|| (), |_| whoami())
}

/// The Overview: who you are, the fleet's health, and what it delivered.
#[component]
fn HomePage() -> impl IntoView {
    let me_resource = use_me();
    let people = Resource::new(|| (), |_| list_people());
    let health = traffic::use_fleet_health();
    let fleet_traffic = traffic::use_traffic(|| None);
    view! {
        <Title text="Overview"/>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let me = match me_resource.await {
                    Ok(Some(me)) => me,
                    Ok(None) => return view! { <ErrorMessage error=AppError::Unauthenticated/> }.into_any(),
                    Err(e) => return view! { <ErrorMessage error=e/> }.into_any(),
                };
                let summary = match people.await {
                    Ok(list) => {
                        let count = |role: Role| list.iter().filter(|p| p.role == role).count();
                        view! {
                            <p>
                                {list.len()} " people: " {count(Role::Admin)} " admin, " {count(Role::Operator)}
                                " operator, " {count(Role::Viewer)} " viewer. " <a href="/people">"See the people in your organization"</a>
                            </p>
                        }
                        .into_any()
                    }
                    Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
                };
                view! {
                    <h1>{me.org_name.clone()}</h1>
                    <p>
                        "You are signed in as " <strong>{me.username.clone()}</strong> ", "
                        {me.role.as_str()} " (" {me.role.describe()} ")."
                    </p>
                    {summary}
                }
                .into_any()
            })}
        </Suspense>
        <h2>"Node health"</h2>
        <traffic::FleetHealthView health/>
        <traffic::TrafficSection traffic=fleet_traffic path="/".to_string()/>
    }
}

fn role_options(selected: Role) -> impl IntoView {
    Role::ALL
        .iter()
        .map(|role| {
            view! {
                <option value=role.as_str() selected=*role == selected>
                    {role.as_str()} " (" {role.describe()} ")"
                </option>
            }
        })
        .collect_view()
}

#[component]
fn PeoplePage() -> impl IntoView {
    let me_resource = use_me();
    let add = ServerAction::<AddPerson>::new();
    let change = ServerAction::<ChangeRole>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let remove = ServerAction::<RemovePerson>::new();
    let people = Resource::new(
        move || {
            (
                add.version().get(),
                change.version().get(),
                reset.version().get(),
                remove.version().get(),
            )
        },
        |_| list_people(),
    );
    let flash = use_flash();
    view! {
        <Title text="People"/>
        <h1>"People"</h1>
        <ActionError action=change/>
        <ActionError action=reset/>
        <ActionError action=remove/>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let me = match me_resource.await {
                    Ok(Some(me)) => me,
                    Ok(None) => return view! { <ErrorMessage error=AppError::Unauthenticated/> }.into_any(),
                    Err(e) => return view! { <ErrorMessage error=e/> }.into_any(),
                };
                let list = match people.await {
                    Ok(list) => list,
                    Err(e) => return view! { <ErrorMessage error=e/> }.into_any(),
                };
                let _ = flash.await;
                let refill = Refill::of::<AddPerson>();
                let role = refill.text("role", Role::Viewer.as_str()).parse().unwrap_or(Role::Viewer);
                let admin = me.role.can_manage_people();
                view! {
                    <table class="people">
                        <thead>
                            <tr>
                                <th>"User name"</th>
                                <th>"Role"</th>
                                <th>"Password"</th>
                                {admin.then(|| view! { <th>"Manage"</th> })}
                            </tr>
                        </thead>
                        <tbody>
                            {list
                                .into_iter()
                                .map(|person| view! { <PersonRow person=person me=me.clone() admin=admin change reset remove/> })
                                .collect_view()}
                        </tbody>
                    </table>
                    {if admin {
                        view! {
                            <h2>"Add a person"</h2>
                            <p class="hint">
                                "They sign in with the temporary password you choose and must change it at once."
                            </p>
                            <ActionForm action=add attr:class="stack" attr:id="add-person">
                                <label>"User name" <input name="username" required autocomplete="off" value=refill.text("username", "")/></label>
                                <label>"Role" <select name="role">{role_options(role)}</select></label>
                                <PasswordInput name="temporary_password" label="Temporary password" new_password=true/>
                                <button type="submit">"Add person"</button>
                            </ActionForm>
                            <ActionError action=add/>
                        }
                        .into_any()
                    } else {
                        view! { <p class="hint">"Only administrators can add or change people."</p> }.into_any()
                    }}
                }
                .into_any()
            })}
        </Suspense>
    }
}

#[component]
fn PersonRow(
    person: Person,
    me: Me,
    admin: bool,
    change: ServerAction<ChangeRole>,
    reset: ServerAction<ResetPassword>,
    remove: ServerAction<RemovePerson>,
) -> impl IntoView {
    let is_me = person.id == me.user_id;
    let id = person.id.to_string();
    let manage = admin.then(|| {
        let (id1, id2, id3) = (id.clone(), id.clone(), id.clone());
        view! {
            <td class="manage">
                <ActionForm action=change attr:class="inline">
                    <input type="hidden" name="user_id" value=id1/>
                    <select name="role" aria-label="New role">{role_options(person.role)}</select>
                    <button type="submit">"Change role"</button>
                </ActionForm>
                <ActionForm action=reset attr:class="inline">
                    <input type="hidden" name="user_id" value=id2/>
                    <input
                        type="password"
                        name="temporary_password"
                        required
                        minlength=MIN_PASSWORD_LEN
                        placeholder="New temporary password"
                        aria-label="New temporary password"
                        autocomplete="new-password"
                    />
                    <button type="submit">"Reset password"</button>
                </ActionForm>
                {(!is_me).then(|| view! {
                    <ActionForm action=remove attr:class="inline">
                        <input type="hidden" name="user_id" value=id3/>
                        <button type="submit" class="danger">"Remove"</button>
                    </ActionForm>
                })}
            </td>
        }
    });
    view! {
        <tr data-username=person.username.clone()>
            <td>{person.username.clone()} {is_me.then_some(" (you)")}</td>
            <td class="role">{person.role.as_str()}</td>
            <td>{if person.must_change_password { "temporary" } else { "set" }}</td>
            {manage}
        </tr>
    }
}

/// Bytes in B, KB, MB, GB or TB (powers of 1000, as traffic is counted).
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Renders Unix milliseconds as UTC; the same on the server and in the
/// browser, so hydration sees identical text.
pub(crate) fn format_time(ms: i64) -> String {
    let (date, secs) = crate::traffic::civil_utc(ms);
    format!(
        "{date} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[component]
fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let older_than =
        move || query.with(|q| q.get("older_than").and_then(|v| v.parse::<i64>().ok()));
    let page = Resource::new(older_than, audit_log);
    view! {
        <Title text="Audit log"/>
        <h1>"Audit log"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(page) => view! {
                        <table class="audit">
                            <thead>
                                <tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"Details"</th><th>"From"</th></tr>
                            </thead>
                            <tbody>
                                {page.entries.into_iter().map(|e| view! {
                                    <tr>
                                        <td>{format_time(e.at_ms)}</td>
                                        <td>{e.actor}</td>
                                        <td><code>{e.action}</code></td>
                                        <td>{e.detail}</td>
                                        <td>{e.client_addr}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        {page.older.map(|id| view! {
                            <p><a href=format!("/audit?older_than={id}")>"Older entries"</a></p>
                        })}
                    }
                    .into_any(),
                    Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ChangePasswordPage() -> impl IntoView {
    let me_resource = use_me();
    let change = ServerAction::<ChangePassword>::new();
    view! {
        <Title text="Change password"/>
        <h1>"Change your password"</h1>
        <Suspense>
            {move || Suspend::new(async move {
                matches!(me_resource.await, Ok(Some(Me { must_change_password: true, .. }))).then(|| view! {
                    <p class="notice">"Your password is temporary. Choose your own before you continue."</p>
                })
            })}
        </Suspense>
        <ActionForm action=change attr:class="stack">
            <PasswordInput name="current_password" label="Current password"/>
            <PasswordInput name="new_password" label="New password" new_password=true/>
            <PasswordInput name="new_password_confirm" label="New password again" new_password=true/>
            <button type="submit">"Change password"</button>
        </ActionForm>
        <ActionError action=change/>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_render_in_decimal_units() {
        assert_eq!(super::format_bytes(999), "999 B");
        assert_eq!(super::format_bytes(1_500), "1.5 KB");
        assert_eq!(super::format_bytes(2_000_000_000_000), "2.0 TB");
    }

    #[test]
    fn times_render_as_utc() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::format_time(1_795_000_000_000),
            "2026-11-18 11:06:40 UTC"
        );
    }
}
