//! The blobs server as seen over HTTP (the API of `blobs/server/openapi.yaml`).

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderValue, IF_MATCH, IF_RANGE, RANGE};
use reqwest::{Method, StatusCode, Url};

use crate::{ClientError, check_name};

/// A user and the token the server knows them by.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub token: String,
}

/// How patient the client is with the server.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pub connect_timeout: Duration,
    /// A response that moves no byte for this long is given up (and retried).
    pub read_timeout: Duration,
    /// Extra trusted CA certificates (PEM), for servers with a private CA.
    pub root_certificates: Vec<Vec<u8>>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            root_certificates: Vec::new(),
        }
    }
}

/// The flags of the incoming box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    Pending,
    Processing,
    Processed,
    Failed,
}

impl Flag {
    pub fn name(self) -> &'static str {
        match self {
            Flag::Pending => "PENDING",
            Flag::Processing => "PROCESSING",
            Flag::Processed => "PROCESSED",
            Flag::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Flag::Pending, Flag::Processing, Flag::Processed, Flag::Failed]
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(text.trim()))
    }
}

/// Listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Id,
    OldestFirst,
    NewestFirst,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub order: Order,
    pub filter_flag: Option<Flag>,
    /// List tombstones of deleted blobs instead.
    pub deleted: bool,
    /// Ids per request; pages are followed until `max` ids or the end.
    pub page: Option<usize>,
    pub max: Option<usize>,
}

/// How an upload becomes a blob on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadMode {
    /// A new blob: the server answers 409 if the id exists.
    Create,
    /// Create or atomically replace (drafts); with `if_match`, only the version with that
    /// ETag (412 otherwise).
    Replace { if_match: Option<String> },
}

/// Size and version of a blob on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMeta {
    pub size: u64,
    pub etag: Option<String>,
}

/// The user's storage on the server.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Usage {
    pub used_bytes: u64,
    pub quota_bytes: Option<u64>,
    pub blobs: u64,
}

/// A download response, its body not yet read.
pub struct BlobResponse {
    /// Where the body starts in the blob (0 unless a range was granted).
    pub start: u64,
    /// The whole blob's size.
    pub total: u64,
    pub etag: Option<String>,
    /// The `Tag` header: the blob's last 16 bytes.
    pub tag: Option<[u8; 16]>,
    url: String,
    body: reqwest::Response,
    received: u64,
}

impl BlobResponse {
    /// The next piece of the body; `None` at its end. A body that ends before its
    /// Content-Length is an error (retriable), never a short blob.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        let expected = self.total - self.start;
        match self.body.chunk().await {
            Ok(Some(c)) => {
                self.received += c.len() as u64;
                if self.received > expected {
                    return Err(ClientError::Protocol {
                        url: self.url.clone(),
                        reason: format!("body is longer than the {expected} bytes announced"),
                    });
                }
                Ok(Some(c))
            }
            Ok(None) if self.received < expected => Err(ClientError::Http {
                url: self.url.clone(),
                reason: format!("connection closed after {} of {expected} bytes", self.received),
                timeout: false,
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(http_error(&self.url, e)),
        }
    }

    /// Bytes of the body still to come.
    pub fn remaining(&self) -> u64 {
        self.total - self.start - self.received
    }
}

/// HTTP access to one user's blobs on one server.
#[derive(Clone)]
pub struct Remote {
    http: reqwest::Client,
    base: Url,
    user: String,
    auth: HeaderValue,
}

fn http_error(url: &str, e: reqwest::Error) -> ClientError {
    // The source chain says what happened (refused, reset, timed out ...).
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    ClientError::Http {
        url: url.to_owned(),
        reason,
        timeout: e.is_timeout(),
    }
}

impl Remote {
    pub fn new(server: &str, credentials: &Credentials) -> Result<Self, ClientError> {
        Self::with_options(server, credentials, &RemoteOptions::default())
    }

    pub fn with_options(server: &str, credentials: &Credentials, opts: &RemoteOptions) -> Result<Self, ClientError> {
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
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("expected no query or fragment"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        check_name("user", &credentials.user)?;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", credentials.user, credentials.token));
        let auth = HeaderValue::from_str(&format!("Token {encoded}")).map_err(|_| invalid("token is not ASCII"))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .tcp_nodelay(true)
            .no_proxy();
        for pem in &opts.root_certificates {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| invalid(&format!("CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| http_error(server, e))?;
        Ok(Self {
            http,
            base,
            user: credentials.user.clone(),
            auth,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server's address, for messages.
    pub fn server(&self) -> &str {
        self.base.as_str()
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

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url).header(AUTHORIZATION, self.auth.clone())
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: &Url) -> Result<reqwest::Response, ClientError> {
        req.send().await.map_err(|e| http_error(url.as_str(), e))
    }

    async fn unexpected(method: &'static str, url: &Url, resp: reqwest::Response) -> ClientError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp.text().await.unwrap_or_default();
        ClientError::Status {
            method,
            url: url.to_string(),
            status,
            body: body.trim().chars().take(200).collect(),
            retry_after,
        }
    }

    async fn body(url: &Url, resp: reqwest::Response) -> Result<Bytes, ClientError> {
        resp.bytes().await.map_err(|e| http_error(url.as_str(), e))
    }

    /// Uploads an encrypted blob held in memory.
    pub async fn put(&self, namespace: &str, id: &str, blob: Bytes) -> Result<(), ClientError> {
        let len = blob.len() as u64;
        let body = futures::stream::iter([Ok::<_, std::io::Error>(blob)]);
        self.put_stream(namespace, id, len, body, &UploadMode::Create).await
    }

    /// Uploads an encrypted blob of `len` bytes from a stream.
    pub async fn put_stream<S>(
        &self,
        namespace: &str,
        id: &str,
        len: u64,
        body: S,
        mode: &UploadMode,
    ) -> Result<(), ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let mut url = self.url(namespace, Some(id))?;
        let mut req = self.request(Method::PUT, url.clone());
        if let UploadMode::Replace { if_match } = mode {
            url.query_pairs_mut().append_pair("overwrite", "true");
            req = self.request(Method::PUT, url.clone());
            if let Some(etag) = if_match {
                req = req.header(IF_MATCH, etag.as_str());
            }
        }
        let req = req.header(CONTENT_LENGTH, len).body(reqwest::Body::wrap_stream(body));
        let resp = self.send(req, &url).await?;
        match resp.status() {
            StatusCode::OK => Ok(()),
            StatusCode::CONFLICT => Err(ClientError::Exists(id.to_owned())),
            StatusCode::PRECONDITION_FAILED => Err(ClientError::PreconditionFailed(id.to_owned())),
            StatusCode::INSUFFICIENT_STORAGE => Err(ClientError::QuotaExceeded(id.to_owned())),
            _ => Err(Self::unexpected("PUT", &url, resp).await),
        }
    }

    /// Starts a download. With `resume = Some((offset, etag))` it asks for the rest of the
    /// version `etag` from `offset`; if the blob changed, the server sends all of the new
    /// version instead (check [`BlobResponse::start`]).
    pub async fn open(
        &self,
        namespace: &str,
        id: &str,
        resume: Option<(u64, &str)>,
    ) -> Result<BlobResponse, ClientError> {
        let url = self.url(namespace, Some(id))?;
        let mut req = self.request(Method::GET, url.clone());
        if let Some((offset, etag)) = resume {
            req = req.header(RANGE, format!("bytes={offset}-")).header(IF_RANGE, etag);
        }
        let resp = self.send(req, &url).await?;
        let protocol = |reason: String| ClientError::Protocol {
            url: url.to_string(),
            reason,
        };
        let (start, total) = match resp.status() {
            StatusCode::OK => (
                0,
                resp.content_length()
                    .ok_or_else(|| protocol("no Content-Length".into()))?,
            ),
            StatusCode::PARTIAL_CONTENT => {
                let range = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| protocol("206 without a valid Content-Range".into()))?;
                if Some(range.0) != resume.map(|r| r.0) || range.1 + 1 != range.2 {
                    return Err(protocol(format!("unexpected Content-Range {range:?}")));
                }
                (range.0, range.2)
            }
            StatusCode::NOT_FOUND => return Err(ClientError::NotFound(id.to_owned())),
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return Err(Self::unexpected("GET", &url, resp).await);
            }
            _ => return Err(Self::unexpected("GET", &url, resp).await),
        };
        let tag = match resp.headers().get("tag") {
            None => None,
            Some(v) => Some(
                decode_tag(v.as_bytes()).ok_or_else(|| protocol("Tag header is not 16 bytes of base64url".into()))?,
            ),
        };
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(BlobResponse {
            start,
            total,
            etag,
            tag,
            url: url.to_string(),
            body: resp,
            received: 0,
        })
    }

    /// Downloads a whole encrypted blob into memory, with its Tag header.
    pub async fn get(&self, namespace: &str, id: &str) -> Result<(Bytes, Option<[u8; 16]>), ClientError> {
        let mut r = self.open(namespace, id, None).await?;
        let mut out = bytes::BytesMut::with_capacity(r.total as usize);
        while let Some(c) = r.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok((out.freeze(), r.tag))
    }

    /// Size and ETag of a blob, `None` if the server does not have it.
    pub async fn head(&self, namespace: &str, id: &str) -> Result<Option<RemoteMeta>, ClientError> {
        let url = self.url(namespace, Some(id))?;
        let resp = self.send(self.request(Method::HEAD, url.clone()), &url).await?;
        match resp.status() {
            StatusCode::OK => Ok(Some(RemoteMeta {
                size: resp
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                etag: resp
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            })),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected("HEAD", &url, resp).await),
        }
    }

    /// Ids of the blobs in a namespace, in id order (all pages).
    pub async fn list(&self, namespace: &str) -> Result<Vec<String>, ClientError> {
        self.list_with(namespace, &ListOptions::default()).await
    }

    /// Ids as `opts` asks, following the server's pages.
    pub async fn list_with(&self, namespace: &str, opts: &ListOptions) -> Result<Vec<String>, ClientError> {
        let mut url = self.url(namespace, None)?;
        {
            let mut q = url.query_pairs_mut();
            match opts.order {
                Order::Id => {}
                Order::OldestFirst => {
                    q.append_pair("order_by", "+date");
                }
                Order::NewestFirst => {
                    q.append_pair("order_by", "-date");
                }
            }
            if let Some(f) = opts.filter_flag {
                q.append_pair("filter_flag", f.name());
            }
            if opts.deleted {
                q.append_pair("deleted", "true");
            }
            let page = match (opts.page, opts.max) {
                (Some(p), Some(m)) => Some(p.min(m)),
                (p, m) => p.or(m),
            };
            if let Some(p) = page {
                q.append_pair("limit", &p.max(1).to_string());
            }
        }
        let mut ids: Vec<String> = Vec::new();
        loop {
            let resp = self.send(self.request(Method::GET, url.clone()), &url).await?;
            if resp.status() != StatusCode::OK {
                return Err(Self::unexpected("GET", &url, resp).await);
            }
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .map(|target| self.base.join(&target));
            let body = Self::body(&url, resp).await?;
            let page: Vec<String> = serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                url: url.to_string(),
                reason: format!("listing is not a JSON list of ids: {e}"),
            })?;
            ids.extend(page);
            if let Some(max) = opts.max
                && ids.len() >= max
            {
                ids.truncate(max);
                return Ok(ids);
            }
            match next {
                Some(Ok(next)) if next.origin() == self.base.origin() => url = next,
                Some(_) => {
                    return Err(ClientError::Protocol {
                        url: url.to_string(),
                        reason: "Link header points elsewhere".into(),
                    });
                }
                None => return Ok(ids),
            }
        }
    }

    /// Number of blobs in a namespace.
    pub async fn count(&self, namespace: &str) -> Result<u64, ClientError> {
        let mut url = self.url(namespace, None)?;
        url.query_pairs_mut().append_pair("only_count", "true");
        let resp = self.send(self.request(Method::GET, url.clone()), &url).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::unexpected("GET", &url, resp).await);
        }
        #[derive(serde::Deserialize)]
        struct Count {
            count: u64,
        }
        let body = Self::body(&url, resp).await?;
        serde_json::from_slice::<Count>(&body)
            .map(|c| c.count)
            .map_err(|e| ClientError::Protocol {
                url: url.to_string(),
                reason: format!("count is not {{\"count\": N}}: {e}"),
            })
    }

    pub async fn delete(&self, namespace: &str, id: &str) -> Result<(), ClientError> {
        let url = self.url(namespace, Some(id))?;
        let resp = self.send(self.request(Method::DELETE, url.clone()), &url).await?;
        match resp.status() {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(ClientError::NotFound(id.to_owned())),
            _ => Err(Self::unexpected("DELETE", &url, resp).await),
        }
    }

    /// A blob's flags.
    pub async fn flags(&self, namespace: &str, id: &str) -> Result<Vec<Flag>, ClientError> {
        let mut url = self.url(namespace, Some(id))?;
        url.query_pairs_mut().append_pair("only_flags", "true");
        let resp = self.send(self.request(Method::GET, url.clone()), &url).await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(ClientError::NotFound(id.to_owned())),
            _ => return Err(Self::unexpected("GET", &url, resp).await),
        }
        let body = Self::body(&url, resp).await?;
        let names: Vec<String> = serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url: url.to_string(),
            reason: format!("flags are not a JSON list: {e}"),
        })?;
        names
            .iter()
            .map(|n| {
                Flag::parse(n).ok_or_else(|| ClientError::Protocol {
                    url: url.to_string(),
                    reason: format!("unknown flag {n:?}"),
                })
            })
            .collect()
    }

    /// Replaces a blob's flags; with `expect`, only if they are exactly those now
    /// (compare-and-set: [`ClientError::FlagsConflict`] otherwise).
    pub async fn set_flags(
        &self,
        namespace: &str,
        id: &str,
        flags: &[Flag],
        expect: Option<&[Flag]>,
    ) -> Result<(), ClientError> {
        let mut url = self.url(namespace, Some(id))?;
        if let Some(e) = expect {
            let list: Vec<&str> = e.iter().map(|f| f.name()).collect();
            url.query_pairs_mut().append_pair("expect", &list.join(","));
        }
        let names: Vec<&str> = flags.iter().map(|f| f.name()).collect();
        let body = serde_json::to_vec(&names).expect("a list of names serializes");
        let resp = self
            .send(self.request(Method::POST, url.clone()).body(body), &url)
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(ClientError::NotFound(id.to_owned())),
            StatusCode::CONFLICT => Err(ClientError::FlagsConflict {
                id: id.to_owned(),
                expected: expect.unwrap_or_default().iter().map(|f| f.name().to_owned()).collect(),
            }),
            _ => Err(Self::unexpected("POST", &url, resp).await),
        }
    }

    /// The user's storage use and quota.
    pub async fn usage(&self) -> Result<Usage, ClientError> {
        let url = self
            .base
            .join(&format!("usage/{}", self.user))
            .expect("a valid user forms a valid path");
        let resp = self.send(self.request(Method::GET, url.clone()), &url).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::unexpected("GET", &url, resp).await);
        }
        let body = Self::body(&url, resp).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url: url.to_string(),
            reason: format!("usage: {e}"),
        })
    }
}

fn decode_tag(value: &[u8]) -> Option<[u8; 16]> {
    let raw = base64::engine::general_purpose::URL_SAFE_PAD_INDIFFERENT
        .decode(value)
        .ok()?;
    raw.try_into().ok()
}

/// `bytes START-END/TOTAL` → (start, end, total).
fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?, total.parse().ok()?))
}

/// The target of `<...>; rel="next"`.
fn next_link(v: &str) -> Option<String> {
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        assert_eq!(parse_content_range("bytes 10-19/20"), Some((10, 19, 20)));
        assert_eq!(parse_content_range("bytes */20"), None);
        assert_eq!(
            next_link("</blobs/u/?namespace=x&cursor=i.b>; rel=\"next\"").as_deref(),
            Some("/blobs/u/?namespace=x&cursor=i.b")
        );
        assert_eq!(next_link("</a>; rel=\"prev\""), None);
    }
}
