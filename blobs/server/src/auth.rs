//! `Authorization: Token base64(user:token)`, as Soledad clients send it.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

use crate::error::ApiError;
use crate::tokens::Tokens;

/// Checks the request's credentials and that they belong to the user named in the path.
/// Missing or wrong credentials are 401; valid credentials of another user are 403.
pub fn authorize(tokens: &Tokens, headers: &HeaderMap, path_user: &str) -> Result<(), ApiError> {
    let user = authenticate(tokens, headers)?;
    if user != path_user {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// Returns the authenticated user.
pub fn authenticate(tokens: &Tokens, headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing Authorization header"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not ASCII"))?;
    let (scheme, payload) = value
        .trim()
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("expected `Authorization: Token <credentials>`"))?;
    if !scheme.eq_ignore_ascii_case("token") {
        return Err(ApiError::Unauthorized("only the Token scheme is accepted"));
    }
    let decoded = STANDARD_PAD_INDIFFERENT
        .decode(payload.trim())
        .map_err(|_| ApiError::Unauthorized("credentials are not valid base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| ApiError::Unauthorized("credentials are not UTF-8"))?;
    let (user, token) = decoded
        .split_once(':')
        .ok_or(ApiError::Unauthorized("credentials must be `user:token`"))?;
    if !tokens.verify(user, token) {
        return Err(ApiError::Unauthorized("unknown user or token"));
    }
    Ok(user.to_owned())
}

/// The header value a client sends for `user` with `token`.
pub fn header_value(user: &str, token: &str) -> String {
    format!(
        "Token {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
    )
}
