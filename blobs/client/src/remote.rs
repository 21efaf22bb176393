//! The blobs server as seen over HTTP.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::{ClientError, check_name};

/// A user and the token the server knows them by.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub token: String,
}

/// HTTP access to one user's blobs on one server.
#[derive(Clone)]
pub struct Remote {
    http: reqwest::Client,
    base: Url,
    user: String,
    auth: HeaderValue,
}

impl Remote {
    pub fn new(server: &str, credentials: &Credentials) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: server.to_owned(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(server).map_err(|e| invalid(&e.to_string()))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(invalid("expected an http:// or https:// URL"));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("expected a server address such as http://127.0.0.1:2424"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        check_name("user", &credentials.user)?;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", credentials.user, credentials.token));
        let auth = HeaderValue::from_str(&format!("Token {encoded}")).map_err(|_| invalid("token is not ASCII"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .map_err(|source| ClientError::Http {
                url: server.to_owned(),
                source,
            })?;
        Ok(Self {
            http,
            base,
            user: credentials.user.clone(),
            auth,
        })
    }

    fn url(&self, namespace: &str, id: Option<&str>) -> Result<Url, ClientError> {
        check_name("namespace", namespace)?;
        let path = match id {
            Some(id) => {
                check_name("blob id", id)?;
                format!("blobs/{}/{id}", self.user)
            }
            None => format!("blobs/{}/", self.user),
        };
        let mut url = self.base.join(&path).expect("validated names form a valid path");
        url.query_pairs_mut().append_pair("namespace", namespace);
        Ok(url)
    }

    async fn send(&self, method: Method, url: Url, body: Option<Bytes>) -> Result<reqwest::Response, ClientError> {
        let mut req = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            req = req.body(body);
        }
        req.send().await.map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })
    }

    async fn unexpected(method: &'static str, url: &Url, resp: reqwest::Response) -> ClientError {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        ClientError::Status {
            method,
            url: url.to_string(),
            status,
            body: body.trim().chars().take(200).collect(),
        }
    }

    /// Uploads an encrypted blob.
    pub async fn put(&self, namespace: &str, id: &str, blob: Bytes) -> Result<(), ClientError> {
        let url = self.url(namespace, Some(id))?;
        let resp = self.send(Method::PUT, url.clone(), Some(blob)).await?;
        match resp.status() {
            StatusCode::OK => Ok(()),
            StatusCode::CONFLICT => Err(ClientError::Exists(id.to_owned())),
            _ => Err(Self::unexpected("PUT", &url, resp).await),
        }
    }

    /// Downloads an encrypted blob and the tag the server announced for it.
    pub async fn get(&self, namespace: &str, id: &str) -> Result<(Bytes, Option<[u8; 16]>), ClientError> {
        let url = self.url(namespace, Some(id))?;
        let resp = self.send(Method::GET, url.clone(), None).await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(ClientError::NotFound(id.to_owned())),
            _ => return Err(Self::unexpected("GET", &url, resp).await),
        }
        let tag = match resp.headers().get("tag") {
            None => None,
            Some(v) => Some(decode_tag(v.as_bytes()).ok_or_else(|| ClientError::Protocol {
                url: url.to_string(),
                reason: "Tag header is not 16 bytes of base64url".into(),
            })?),
        };
        let expected = resp.content_length();
        let body = resp.bytes().await.map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })?;
        if let Some(expected) = expected
            && expected != body.len() as u64
        {
            return Err(ClientError::Protocol {
                url: url.to_string(),
                reason: format!("got {} of {expected} bytes", body.len()),
            });
        }
        Ok((body, tag))
    }

    /// Ids of the blobs in a namespace.
    pub async fn list(&self, namespace: &str) -> Result<Vec<String>, ClientError> {
        let url = self.url(namespace, None)?;
        let resp = self.send(Method::GET, url.clone(), None).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::unexpected("GET", &url, resp).await);
        }
        let body = resp.bytes().await.map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url: url.to_string(),
            reason: format!("listing is not a JSON list of ids: {e}"),
        })
    }

    pub async fn delete(&self, namespace: &str, id: &str) -> Result<(), ClientError> {
        let url = self.url(namespace, Some(id))?;
        let resp = self.send(Method::DELETE, url.clone(), None).await?;
        match resp.status() {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(ClientError::NotFound(id.to_owned())),
            _ => Err(Self::unexpected("DELETE", &url, resp).await),
        }
    }
}

fn decode_tag(value: &[u8]) -> Option<[u8; 16]> {
    let raw = base64::engine::general_purpose::URL_SAFE_PAD_INDIFFERENT
        .decode(value)
        .ok()?;
    raw.try_into().ok()
}
