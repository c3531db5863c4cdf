//! The browser half of the portal: hydrates the server-rendered pages so that
//! forms submit in place and interactive controls come alive.

// The node page's view type nests deeper than the default limit allows.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
