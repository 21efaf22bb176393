//! A small fault-injecting HTTP proxy on loopback, between the client and a real server.
//!
//! It serves one request per connection (it adds `Connection: close` to every response, so
//! the client opens a new connection for each), logs every request, and can break chosen
//! responses: drop the connection (reset) or end it early (clean close) after a given number
//! of body bytes, stall in the middle of a body, flip a byte at a body offset, or answer
//! with a status of its own without asking the server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub enum Fault {
    /// Reset the connection after this many body bytes.
    Drop { after: u64 },
    /// Close the connection cleanly after this many body bytes.
    Truncate { after: u64 },
    /// Stop sending after this many body bytes, for this long, then close.
    Stall { after: u64, pause: Duration },
    /// Flip the lowest bit of the body byte at this offset.
    Corrupt { at: u64 },
    /// Answer with this status and headers, without contacting the server.
    Status { code: u16, headers: &'static str },
    /// Close the connection without answering.
    Refuse,
    /// Send the body at this many bytes per second (so that what was sent is about what
    /// the client has read).
    Slow { rate: u64 },
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    /// Matches request paths containing this.
    pub path: String,
    pub fault: Fault,
    /// How many matching requests it applies to.
    pub times: usize,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// Request body bytes forwarded to the server.
    pub body_bytes: u64,
    /// Response body bytes forwarded to the client.
    pub response_bytes: u64,
    pub faulted: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    log: Vec<Arc<Mutex<Logged>>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        assert!(upstream.ip().is_loopback(), "the proxy only forwards to loopback");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = handle(client, upstream, st).await;
                });
            }
        });
        Proxy { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add(&self, method: &'static str, path: impl Into<String>, fault: Fault, times: usize) {
        self.state.lock().unwrap().rules.push(Rule {
            method,
            path: path.into(),
            fault,
            times,
        });
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .map(|l| l.lock().unwrap().clone())
            .collect()
    }

    /// Logged requests with this method whose path contains `path`.
    pub fn requests(&self, method: &str, path: &str) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.method == method && l.path.contains(path))
            .collect()
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Reads until a complete head is buffered; returns the buffer and the head's length.
async fn read_head(s: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, usize)>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = find_head_end(&buf) {
            return Ok(Some((buf, end)));
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf.len() > 1 << 20 {
            return Ok(None);
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let Some((buf, head_len)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut first = head.lines().next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let logged = Arc::new(Mutex::new(Logged {
        method: method.clone(),
        path: path.clone(),
        range: header(&head, "range").map(str::to_owned),
        body_bytes: (buf.len() - head_len) as u64,
        response_bytes: 0,
        faulted: false,
    }));
    let fault = {
        let mut s = st.lock().unwrap();
        s.log.push(logged.clone());
        let rule = s
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(&r.path));
        rule.map(|r| {
            r.times -= 1;
            r.fault.clone()
        })
    };
    logged.lock().unwrap().faulted = fault.is_some();
    match &fault {
        Some(Fault::Refuse) => return Ok(()),
        Some(Fault::Status { code, headers }) => {
            let resp = format!("HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n{headers}\r\n");
            client.write_all(resp.as_bytes()).await?;
            let _ = client.shutdown().await;
            // Let the client finish sending, so it reads the answer rather than a reset.
            let mut sink = [0u8; 65536];
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Ok(n) = client.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            return Ok(());
        }
        _ => {}
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    client.set_nodelay(true)?;
    if let Some(Fault::Drop { .. }) = fault {
        // Closing then resets the connection instead of ending it cleanly.
        client.set_zero_linger()?;
    }
    server.write_all(&buf).await?;
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let log_up = logged.clone();
    let upload = tokio::spawn(async move {
        let mut tmp = vec![0u8; 65536];
        loop {
            match client_r.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if server_w.write_all(&tmp[..n]).await.is_err() {
                        break;
                    }
                    log_up.lock().unwrap().body_bytes += n as u64;
                }
            }
        }
        let _ = server_w.shutdown().await;
    });
    // The response head, with Connection: close added.
    let mut resp = Vec::new();
    let mut tmp = vec![0u8; 65536];
    let head_end = loop {
        if let Some(end) = find_head_end(&resp) {
            break end;
        }
        let n = server_r.read(&mut tmp).await?;
        if n == 0 {
            upload.abort();
            return Ok(());
        }
        resp.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&resp[..head_end - 2]).into_owned();
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .collect();
    let new_head = format!("{}\r\nConnection: close\r\n\r\n", kept.join("\r\n"));
    client_w.write_all(new_head.as_bytes()).await?;
    let mut pending = resp.split_off(head_end);
    let mut offset = 0u64;
    loop {
        if pending.is_empty() {
            let n = server_r.read(&mut tmp).await?;
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&tmp[..n]);
        }
        let end = offset + pending.len() as u64;
        match &fault {
            Some(Fault::Drop { after }) | Some(Fault::Truncate { after }) | Some(Fault::Stall { after, .. })
                if end > *after =>
            {
                let keep = (*after - offset) as usize;
                client_w.write_all(&pending[..keep]).await?;
                client_w.flush().await?;
                if let Some(Fault::Stall { pause, .. }) = &fault {
                    tokio::time::sleep(*pause).await;
                }
                // Both halves go: the upload task's read half, and this write half.
                upload.abort();
                let _ = upload.await;
                drop(client_w);
                return Ok(());
            }
            Some(Fault::Corrupt { at }) if offset <= *at && *at < end => {
                pending[(*at - offset) as usize] ^= 1;
            }
            _ => {}
        }
        if let Some(Fault::Slow { rate }) = &fault {
            let started = std::time::Instant::now();
            let mut sent = 0u64;
            for piece in pending.chunks(16 * 1024) {
                client_w.write_all(piece).await?;
                sent += piece.len() as u64;
                logged.lock().unwrap().response_bytes = offset + sent;
                let due = Duration::from_secs_f64(sent as f64 / *rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        } else {
            client_w.write_all(&pending).await?;
        }
        logged.lock().unwrap().response_bytes = end;
        offset = end;
        pending.clear();
    }
    let _ = client_w.shutdown().await;
    let _ = upload.await;
    Ok(())
}
