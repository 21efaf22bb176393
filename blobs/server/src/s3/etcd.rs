//! A small etcd v3 client over etcd's JSON gateway (`/v3/kv/*`): range, transactions with
//! compare-and-set, leases. Hand-written because the gRPC client crates pull in a protobuf
//! toolchain and a second HTTP stack for the four calls the S3 backend makes; the JSON
//! gateway is etcd's documented HTTP API and takes the same messages.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("etcd answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("etcd sent an answer this client cannot read: {0}")]
    Malformed(String),
}

#[derive(Clone)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
}

/// One key and its value, with the revisions compare-and-set needs.
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// A condition of a transaction.
pub enum Compare<'a> {
    /// The key does not exist.
    Absent(&'a [u8]),
    /// The key exists.
    Present(&'a [u8]),
    /// The key was last changed at this revision (so it exists and nobody changed it since).
    ModRevision(&'a [u8], i64),
}

/// An operation of a transaction.
pub enum Op<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
        lease: Option<i64>,
    },
    Delete(&'a [u8]),
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[derive(Deserialize)]
struct RawKv {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    mod_revision: Value,
}

impl RawKv {
    fn decode(self) -> Result<Kv, EtcdError> {
        let bad = |e: base64::DecodeError| EtcdError::Malformed(e.to_string());
        Ok(Kv {
            key: B64.decode(self.key).map_err(bad)?,
            value: B64.decode(self.value).map_err(bad)?,
            mod_revision: num(&self.mod_revision),
        })
    }
}

fn kvs(v: &Value) -> Result<Vec<Kv>, EtcdError> {
    match v.get("kvs") {
        None => Ok(Vec::new()),
        Some(k) => serde_json::from_value::<Vec<RawKv>>(k.clone())
            .map_err(|e| EtcdError::Malformed(e.to_string()))?
            .into_iter()
            .map(RawKv::decode)
            .collect(),
    }
}

impl Etcd {
    pub fn new(endpoints: Vec<String>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        Self { http, endpoints }
    }

    /// Sends one call, trying the endpoints in turn until one answers.
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        self.call_with(path, body, true).await
    }

    /// `call`; a call that is not `idempotent` goes to the next endpoint only if it could not
    /// be sent to the last one: once sent, it may have been applied even though no answer
    /// came (a timeout), and sending it again would apply it twice or report a conflict with
    /// itself.
    async fn call_with(&self, path: &str, body: Value, idempotent: bool) -> Result<Value, EtcdError> {
        let mut last = None;
        for base in &self.endpoints {
            let url = format!("{}{path}", base.trim_end_matches('/'));
            match self.http.post(&url).body(body.to_string()).send().await {
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.map_err(|e| EtcdError::Unreachable {
                        url: url.clone(),
                        message: e.to_string(),
                    })?;
                    if !status.is_success() {
                        return Err(EtcdError::Status {
                            status: status.as_u16(),
                            body: text,
                        });
                    }
                    return serde_json::from_str(&text).map_err(|e| EtcdError::Malformed(e.to_string()));
                }
                Err(e) => {
                    let sent = !e.is_connect();
                    let error = EtcdError::Unreachable {
                        url,
                        message: e.to_string(),
                    };
                    if sent && !idempotent {
                        return Err(error);
                    }
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or(EtcdError::Unreachable {
            url: "(none)".into(),
            message: "no endpoint configured".into(),
        }))
    }

    /// One key, read linearizably.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Kv>, EtcdError> {
        let v = self.call("/v3/kv/range", json!({ "key": b64(key) })).await?;
        Ok(kvs(&v)?.into_iter().next())
    }

    /// Every key under `prefix`, in key order, from one consistent revision (read in pages,
    /// since etcd limits the size of one answer).
    pub async fn get_prefix(&self, prefix: &[u8]) -> Result<Vec<Kv>, EtcdError> {
        const PAGE: usize = 2000;
        let end = b64(&prefix_end(prefix));
        let mut out = Vec::new();
        let mut from = prefix.to_vec();
        let mut revision = 0i64;
        loop {
            let mut req = json!({ "key": b64(&from), "range_end": end, "limit": PAGE });
            if revision > 0 {
                req["revision"] = json!(revision.to_string());
            }
            let v = self.call("/v3/kv/range", req).await?;
            if revision == 0 {
                revision = num(&v["header"]["revision"]);
            }
            let page = kvs(&v)?;
            let more = v.get("more").and_then(Value::as_bool).unwrap_or(false);
            if let Some(last) = page.last() {
                from = last.key.clone();
                from.push(0);
            }
            out.extend(page);
            if !more {
                return Ok(out);
            }
        }
    }

    /// Runs the operations if every comparison holds; `Ok(false)` if one did not.
    pub async fn txn(&self, compare: &[Compare<'_>], ops: &[Op<'_>]) -> Result<bool, EtcdError> {
        let compare: Vec<Value> = compare
            .iter()
            .map(|c| match c {
                Compare::Absent(k) => {
                    json!({"key": b64(k), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
                }
                Compare::Present(k) => {
                    json!({"key": b64(k), "target": "CREATE", "result": "GREATER", "create_revision": "0"})
                }
                Compare::ModRevision(k, r) => {
                    json!({"key": b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": r.to_string()})
                }
            })
            .collect();
        let success: Vec<Value> = ops
            .iter()
            .map(|o| match o {
                Op::Put { key, value, lease } => {
                    let mut p = json!({"key": b64(key), "value": b64(value)});
                    if let Some(l) = lease {
                        p["lease"] = json!(l.to_string());
                    }
                    json!({ "request_put": p })
                }
                Op::Delete(k) => json!({"request_delete_range": {"key": b64(k)}}),
            })
            .collect();
        let v = self
            .call_with("/v3/kv/txn", json!({"compare": compare, "success": success}), false)
            .await?;
        Ok(v.get("succeeded").and_then(Value::as_bool).unwrap_or(false))
    }

    /// A lease that ends by itself after `ttl_secs` unless revoked; keys put with it go too.
    pub async fn grant(&self, ttl_secs: u64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/grant", json!({ "TTL": ttl_secs.to_string() }))
            .await?;
        Ok(num(&v["ID"]))
    }

    /// Renews a lease for its full time to live; returns that time in seconds, or 0 if the
    /// lease has already ended (its keys are gone then).
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        // The gateway streams: an error comes as `{"error": ...}` with status 200, and must
        // not read as "the lease has ended".
        match v.get("result") {
            Some(result) => Ok(num(&result["TTL"])),
            None => Err(EtcdError::Malformed(format!("a lease renewal without a result: {v}"))),
        }
    }

    /// Seconds a lease has left, or -1 if it does not exist (ended or revoked).
    pub async fn time_to_live(&self, lease: i64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/timetolive", json!({ "ID": lease.to_string() }))
            .await?;
        Ok(num(&v["TTL"]))
    }

    /// Keeps a lease of `ttl_secs` alive from a task until the returned handle aborts it,
    /// renewing it three times per time to live so that one failed renewal does not end it.
    pub fn spawn_keep_alive(&self, lease: i64, ttl_secs: u64) -> tokio::task::AbortHandle {
        let etcd = self.clone();
        let period = std::time::Duration::from_millis(ttl_secs.max(1) * 1000 / 3);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match etcd.keep_alive(lease).await {
                    Ok(ttl) if ttl > 0 => {}
                    Ok(_) => {
                        tracing::warn!(lease, "an etcd lease ended before its holder was done");
                        return;
                    }
                    Err(e) => tracing::warn!(lease, error = %e, "renewing an etcd lease failed; trying again"),
                }
            }
        })
        .abort_handle()
    }

    /// Ends a lease now, deleting its keys.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"a/b/"), b"a/b0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
