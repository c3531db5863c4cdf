//! Server functions for one's own API tokens.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ApiTokenInfo, NewApiToken};

#[cfg(feature = "ssr")]
use crate::backend::{ctx, tokens};

#[server(endpoint = "api_tokens")]
pub async fn list_api_tokens() -> Result<Vec<ApiTokenInfo>, AppError> {
    let me = ctx::require(|_| true, "use API tokens")?;
    tokens::list(&ctx::state()?.db, &me).await
}

#[server(endpoint = "create_api_token")]
pub async fn create_api_token(name: String) -> Result<NewApiToken, AppError> {
    let me = ctx::require(|_| true, "use API tokens")?;
    tokens::create(&ctx::state()?.db, &me, &ctx::actor(&me), &name).await
}

#[server(endpoint = "revoke_api_token")]
pub async fn revoke_api_token(id: i64) -> Result<(), AppError> {
    let me = ctx::require(|_| true, "use API tokens")?;
    tokens::revoke(&ctx::state()?.db, &me, &ctx::actor(&me), id).await
}
