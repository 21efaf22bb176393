//! The fixed-rate ping: a trivial request (`GET /`) sent to the server at a steady pace while
//! a round runs. Its latency under load is how responsive the server stays, the method of
//! Soledad's responsiveness study (httperf against `/ping`).

use std::time::{Duration, Instant};

use crate::fixed_rate::FixedRate;

/// Pings per second.
pub const PING_INTERVAL: Duration = Duration::from_millis(50);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Pinger {
    ticker: FixedRate<Vec<f64>>,
}

impl Pinger {
    /// Opens a connection to `server` (an `http://` loopback URL), pings once unrecorded so
    /// that connection setup is not measured, then pings every `interval` on a thread.
    pub fn start(server: &str, interval: Duration) -> Result<Self, String> {
        let url = format!("{}/", server.trim_end_matches('/'));
        let client = reqwest::blocking::Client::builder()
            .timeout(PING_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot create the ping client: {e}"))?;
        client
            .get(&url)
            .send()
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("the server does not answer {url}: {e}"))?;
        let ticker = FixedRate::spawn(
            "server-ping",
            interval,
            move || (client, url, Vec::new()),
            |(client, url, latencies)| {
                let t = Instant::now();
                // A failed ping counts as the time it took to fail: the server did not answer
                // in time.
                let _ = client.get(url.as_str()).send().and_then(|r| r.bytes());
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            },
            |(_, _, latencies)| latencies,
        );
        Ok(Self { ticker })
    }

    /// Stops after one more ping (so there is always at least one) and returns every
    /// latency in milliseconds.
    pub fn stop(self) -> Vec<f64> {
        self.ticker.stop().unwrap_or_default()
    }
}
