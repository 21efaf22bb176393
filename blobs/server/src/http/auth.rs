//! `Authorization: Token base64(name:token)`, as Soledad clients and services send it.
//!
//! The token files are read at start and again on SIGHUP, so users can be added or revoked
//! without a restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

use crate::http::error::ApiError;
use crate::http::tokens::{TokenFileError, Tokens};

/// The service name whose tokens may take backups.
pub const BACKUP_SERVICE: &str = "backup";

/// The users' and services' tokens, swappable at run time.
pub struct Auth {
    users_path: PathBuf,
    services_path: Option<PathBuf>,
    users: RwLock<Arc<Tokens>>,
    services: RwLock<Arc<Tokens>>,
}

impl Auth {
    pub fn load(users_path: PathBuf, services_path: Option<PathBuf>) -> Result<Self, TokenFileError> {
        let users = Tokens::load(&users_path)?;
        let services = match &services_path {
            Some(p) => Tokens::load(p)?,
            None => Tokens::default(),
        };
        Ok(Self {
            users_path,
            services_path,
            users: RwLock::new(Arc::new(users)),
            services: RwLock::new(Arc::new(services)),
        })
    }

    /// Re-reads both token files; on error the old tokens stay in force.
    pub fn reload(&self) -> Result<(), TokenFileError> {
        let users = Tokens::load(&self.users_path)?;
        let services = match &self.services_path {
            Some(p) => Some(Tokens::load(p)?),
            None => None,
        };
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
        if let Some(s) = services {
            *self.services.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
        }
        Ok(())
    }

    pub fn users(&self) -> Arc<Tokens> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn services(&self) -> Arc<Tokens> {
        self.services.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks a user's credentials and that they belong to the user named in the path.
    /// Missing or wrong credentials are 401; valid credentials of another user are 403.
    pub fn authorize_user(&self, headers: &HeaderMap, path_user: &str) -> Result<(), ApiError> {
        // Borrowed, not `users()`: this runs on every request.
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        if !verified(&users, headers, |user| user == path_user)? {
            return Err(ApiError::Forbidden);
        }
        Ok(())
    }

    /// Checks a service's credentials; returns the service's name.
    pub fn authorize_service(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        authenticate(&self.services(), headers)
    }
}

/// Returns the authenticated name.
pub fn authenticate(tokens: &Tokens, headers: &HeaderMap) -> Result<String, ApiError> {
    verified(tokens, headers, str::to_owned)
}

/// Checks the credentials and hands the authenticated name to `then`.
fn verified<R>(tokens: &Tokens, headers: &HeaderMap, then: impl FnOnce(&str) -> R) -> Result<R, ApiError> {
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
        .ok_or(ApiError::Unauthorized("credentials must be `name:token`"))?;
    if !tokens.verify(user, token) {
        return Err(ApiError::Unauthorized("unknown user or token"));
    }
    Ok(then(user))
}

/// The header value a client sends for `user` with `token`.
pub fn header_value(user: &str, token: &str) -> String {
    format!(
        "Token {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
    )
}
