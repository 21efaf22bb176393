//! Headless Chromium driven over the DevTools protocol, through a pipe
//! (`--remote-debugging-pipe`: the browser reads commands on fd 3 and writes on fd 4, each
//! message a JSON text ended by a NUL byte).
//!
//! Written here rather than taken from a CDP crate: the pipe opens no debugging port at all,
//! the handful of commands the tests send fit in this file, and the crates (chromiumoxide,
//! headless_chrome) speak WebSocket and bring the whole generated protocol, minutes of
//! compilation for the test suite.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn chromium() -> PathBuf {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("the browser test needs Chromium: apt-get install -y chromium (scripts/test installs it)")
}

/// What a page reported while it loaded and ran: console errors and warnings, exceptions,
/// failed loads, dialogs; and every URL it requested.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub problems: Vec<String>,
    pub requests: Vec<String>,
}

pub struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    /// Events received while waiting for something else.
    events: VecDeque<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors it creates; close-on-exec keeps our ends out of
    // the browser.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    /// Starts headless Chromium with a fresh profile, nothing that reaches out, and one page.
    pub fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let (cmd_read, cmd_write) = pipe();
        let (msg_read, msg_write) = pipe();
        let mut command = Command::new(chromium());
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-default-apps",
                "--disable-extensions",
                "--mute-audio",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec: the pipe ends move to
        // fds 3 and 4 (through high numbers first, in case they are 3 or 4 already).
        unsafe {
            command.pre_exec(move || {
                let high_read = libc::fcntl(cmd_read, libc::F_DUPFD, 100);
                let high_write = libc::fcntl(msg_write, libc::F_DUPFD, 100);
                if high_read < 0 || high_write < 0 || libc::dup2(high_read, 3) < 0 || libc::dup2(high_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high_read);
                libc::close(high_write);
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        // SAFETY: the descriptors are ours, open, and closed exactly once here.
        unsafe {
            libc::close(cmd_read);
            libc::close(msg_write);
        }
        let commands = unsafe { File::from_raw_fd(cmd_write) };
        let incoming = unsafe { File::from_raw_fd(msg_read) };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(incoming);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                            && tx.send(v).is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        let mut browser = Self {
            child,
            commands,
            messages: rx,
            events: VecDeque::new(),
            next_id: 1,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("a target").to_owned();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().expect("a session").to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            browser.page_call(domain, json!({}));
        }
        browser
    }

    fn receive(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("Chromium did not answer within {TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("Chromium closed the pipe"),
        }
    }

    /// Sends a command and waits for its result; events that arrive meanwhile are kept.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).expect("writing to Chromium");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let v = self.receive(deadline);
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
            self.events.push_back(v);
        }
    }

    pub fn page_call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    /// Loads a page and waits for its load event; returns what it reported meanwhile.
    pub fn open(&mut self, url: &str) -> Diagnostics {
        // Late messages of the previous page are reported too, not dropped.
        let mut d = Diagnostics::default();
        for v in self.drain(Duration::ZERO) {
            let mut late = Diagnostics::default();
            self.diagnose(&v, &mut late);
            d.problems.extend(
                late.problems
                    .into_iter()
                    .map(|p| format!("after the previous page: {p}")),
            );
        }
        let nav = self.page_call("Page.navigate", json!({"url": url}));
        if let Some(e) = nav.get("errorText").and_then(Value::as_str) {
            d.problems.push(format!("navigation failed: {e}"));
            return d;
        }
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let v = match self.events.pop_front() {
                Some(v) => v,
                None => self.receive(deadline),
            };
            let done = v["method"] == "Page.loadEventFired";
            seen.push(v);
            if done {
                break;
            }
        }
        // Whatever ran right after the load.
        seen.extend(self.drain(Duration::from_millis(50)));
        for v in seen {
            self.diagnose(&v, &mut d);
        }
        d
    }

    /// Messages arriving within `wait`.
    pub fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut out: Vec<Value> = self.events.drain(..).collect();
        let deadline = Instant::now() + wait;
        while let Ok(v) = self
            .messages
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(v);
        }
        out
    }

    /// Adds what a message says went wrong.
    pub fn diagnose(&mut self, v: &Value, d: &mut Diagnostics) {
        let p = &v["params"];
        match v["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" => {
                let kind = p["type"].as_str().unwrap_or("");
                if matches!(kind, "error" | "warning" | "assert") {
                    d.problems.push(format!("console {kind}: {}", p["args"]));
                }
            }
            "Runtime.exceptionThrown" => d.problems.push(format!("exception: {}", p["exceptionDetails"])),
            "Log.entryAdded" => {
                let level = p["entry"]["level"].as_str().unwrap_or("");
                if matches!(level, "error" | "warning") {
                    d.problems
                        .push(format!("log {level}: {} {}", p["entry"]["text"], p["entry"]["url"]));
                }
            }
            "Network.requestWillBeSent" => {
                if let Some(url) = p["request"]["url"].as_str() {
                    d.requests.push(url.to_owned());
                }
            }
            "Network.loadingFailed" if p["canceled"] != true => {
                d.problems
                    .push(format!("load failed: {} ({})", p["errorText"], p["type"]));
            }
            "Network.responseReceived" => {
                let status = p["response"]["status"].as_u64().unwrap_or(0);
                if status >= 400 {
                    d.problems.push(format!("HTTP {status}: {}", p["response"]["url"]));
                }
            }
            "Page.javascriptDialogOpening" => {
                d.problems.push(format!("a dialog opened: {}", p["message"]));
                self.page_call("Page.handleJavaScriptDialog", json!({"accept": true}));
            }
            _ => {}
        }
    }

    /// Evaluates an expression in the page; returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.page_call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Sets the viewport: width and height in CSS pixels, a phone's or a desktop's.
    pub fn viewport(&mut self, width: u32, height: u32, scale: f64, mobile: bool) {
        self.page_call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}),
        );
    }

    /// A PNG of the page from its top, `height` CSS pixels at most.
    pub fn screenshot(&mut self, path: &Path, max_height: f64) -> Vec<u8> {
        let metrics = self.page_call("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0);
        let height = size["height"].as_f64().unwrap_or(900.0).min(max_height);
        let shot = self.page_call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            }),
        );
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        std::fs::write(path, &png).unwrap();
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
