//! The Lastmile portal's user interface and server functions, shared by the
//! server (rendering, `ssr` feature) and the browser (hydration, `hydrate`).

pub mod api;
mod charts;
pub mod error;
pub mod model;
mod pages;
pub mod traffic;
pub mod validate;

#[cfg(feature = "ssr")]
pub mod backend;

pub use pages::{shell, App};
