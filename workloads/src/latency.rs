//! Latency histograms (HdrHistogram, microseconds, 3 significant digits).

use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// Latencies of one kind of operation.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

#[derive(Debug, thiserror::Error)]
#[error("invalid latency histogram: {0}")]
pub struct HistogramError(String);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Latencies {
    pub fn new() -> Self {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        h.auto(true);
        Self(h)
    }

    pub fn record(&mut self, latency: Duration) {
        self.0.saturating_record(micros(latency));
    }

    /// Records a latency measured by a client that waits for each response before sending
    /// the next request, adding the requests it would have sent meanwhile had it kept its
    /// pace (`expected_interval`): without them a stall hides behind one slow sample.
    pub fn record_corrected(&mut self, latency: Duration, expected_interval: Duration) {
        let _ = self.0.record_correct(micros(latency), micros(expected_interval));
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("auto-resizing histograms always add");
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1e3
    }

    pub fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1e3
    }

    /// HdrHistogram's V2 compressed format, base64: readable by any HdrHistogram library.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut buf)
            .expect("serializing to memory");
        base64::engine::general_purpose::STANDARD.encode(buf)
    }

    pub fn decode(text: &str) -> Result<Self, HistogramError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| HistogramError(e.to_string()))?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut raw.as_slice())
            .map_err(|e| HistogramError(format!("{e:?}")))?;
        h.auto(true);
        Ok(Self(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_quantiles() {
        let mut l = Latencies::new();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let back = Latencies::decode(&l.encode()).unwrap();
        assert_eq!(back.len(), 100);
        assert!((back.quantile_ms(0.5) - 50.0).abs() < 0.1);
        assert!((back.max_ms() - 100.0).abs() < 0.1);
        assert!(Latencies::decode("not base64!").is_err());
    }

    #[test]
    fn a_stall_is_not_hidden_by_closed_loop_measurement() {
        // 99 fast requests at a 1 ms pace, then one that stalls for a second.
        let mut naive = Latencies::new();
        let mut corrected = Latencies::new();
        for _ in 0..99 {
            naive.record(Duration::from_millis(1));
            corrected.record_corrected(Duration::from_millis(1), Duration::from_millis(1));
        }
        naive.record(Duration::from_secs(1));
        corrected.record_corrected(Duration::from_secs(1), Duration::from_millis(1));
        assert!(naive.quantile_ms(0.99) < 2.0);
        assert!(corrected.quantile_ms(0.99) > 400.0, "{}", corrected.quantile_ms(0.99));
    }
}
