//! Then and now: the numbers Soledad published for itself in 2017, beside the series that
//! measure the same thing here, with how the methods differ. The figures are Soledad's own
//! committed benchmark data (its `scripts/benchmark` JSON files and its server-scalability
//! reports), as summarised in the project's reference notes.

/// How a 2017 figure was measured.
pub struct Source {
    pub name: &'static str,
    /// Their method, and what differs from ours.
    pub method: &'static str,
}

pub const PIPELINE: Source = Source {
    name: "Soledad's legacy-vs-blobs benchmark (September 2017)",
    method: "the whole incoming-mail pipeline through Soledad's Python client with a session cache and persistent HTTP, mean of 4 rounds on a laptop (Intel i7-4600U, CPython 2.7, Twisted). Here: the same steps by this project's Rust client against its own server on loopback, the median of a run's rounds on the runner on the Machines page.",
};

pub const SQLITE: Source = Source {
    name: "Soledad's SQLite blobs backend benchmark (September 2017)",
    method: "pysqlcipher through a pool of 2 connections, auto-calibrated rounds of pytest-benchmark on the same laptop; MB/s derived from the mean time. Here: the client's SQLCipher local store, the median of a run's rounds, shown in the same MB (10⁶ bytes).",
};

pub const SCALABILITY: Source = Source {
    name: "Soledad's server-scalability test (November 2017)",
    method: "FunkLoad from a 4-vCPU virtual machine to a server on another machine across a network, 30-second cycles, successful requests per second. Here: the clients and the server share the runner over loopback, in 3-second rounds; the server's speed is not limited by a network, but it shares its cores with the load.",
};

/// One published figure and the series that answers it here.
pub struct Figure {
    pub what: &'static str,
    pub scenario_id: &'static str,
    pub metric: &'static str,
    /// Their value, in `unit`.
    pub then: f64,
    /// Their spread as published (`± sd`), if any.
    pub then_spread: Option<f64>,
    pub unit: &'static str,
    /// Multiplies our series' value into `unit` (MiB/s into MB/s, say).
    pub scale: f64,
    pub higher_is_better: bool,
    pub source: &'static Source,
}

const MB_PER_MIB: f64 = 1.048_576;

pub const FIGURES: &[Figure] = &[
    Figure {
        what: "Mail pipeline, 1000 messages of 10 kB",
        scenario_id: "incoming.process/1000x10k",
        metric: "wall_s",
        then: 72.50,
        then_spread: Some(19.38),
        unit: "s",
        scale: 1.0,
        higher_is_better: false,
        source: &PIPELINE,
    },
    Figure {
        what: "Mail pipeline, 100 messages of 100 kB",
        scenario_id: "incoming.process/100x100k",
        metric: "wall_s",
        then: 5.18,
        then_spread: Some(0.92),
        unit: "s",
        scale: 1.0,
        higher_is_better: false,
        source: &PIPELINE,
    },
    Figure {
        what: "Mail pipeline, 10 messages of 1000 kB",
        scenario_id: "incoming.process/10x1M",
        metric: "wall_s",
        then: 2.03,
        then_spread: Some(0.10),
        unit: "s",
        scale: 1.0,
        higher_is_better: false,
        source: &PIPELINE,
    },
    Figure {
        what: "Encrypted local store, writing 1 blob of 10 MB",
        scenario_id: "store.put/sqlcipher/1x10M",
        metric: "throughput_mib_s",
        then: 25.4,
        then_spread: None,
        unit: "MB/s",
        scale: MB_PER_MIB,
        higher_is_better: true,
        source: &SQLITE,
    },
    Figure {
        what: "Encrypted local store, writing 1000 blobs of 10 kB",
        scenario_id: "store.put/sqlcipher/1000x10k",
        metric: "throughput_mib_s",
        then: 8.9,
        then_spread: None,
        unit: "MB/s",
        scale: MB_PER_MIB,
        higher_is_better: true,
        source: &SQLITE,
    },
    Figure {
        what: "Encrypted local store, reading 1 blob of 10 MB",
        scenario_id: "store.get/sqlcipher/1x10M",
        metric: "throughput_mib_s",
        then: 219.0,
        then_spread: None,
        unit: "MB/s",
        scale: MB_PER_MIB,
        higher_is_better: true,
        source: &SQLITE,
    },
    Figure {
        what: "Encrypted local store, reading 1000 blobs of 10 kB",
        scenario_id: "store.get/sqlcipher/1000x10k",
        metric: "throughput_mib_s",
        then: 57.0,
        then_spread: None,
        unit: "MB/s",
        scale: MB_PER_MIB,
        higher_is_better: true,
        source: &SQLITE,
    },
    Figure {
        what: "Server, uploads of 10 kB by 25 clients",
        scenario_id: "server.load/upload/10k/c25",
        metric: "ops_s",
        then: 12.4,
        then_spread: None,
        unit: "req/s",
        scale: 1.0,
        higher_is_better: true,
        source: &SCALABILITY,
    },
    Figure {
        what: "Server, uploads of 10 kB by 100 clients",
        scenario_id: "server.load/upload/10k/c100",
        metric: "ops_s",
        then: 11.7,
        then_spread: None,
        unit: "req/s",
        scale: 1.0,
        higher_is_better: true,
        source: &SCALABILITY,
    },
    Figure {
        what: "Server, downloads of 10 kB by 25 clients",
        scenario_id: "server.load/download/10k/c25",
        metric: "ops_s",
        then: 293.8,
        then_spread: None,
        unit: "req/s",
        scale: 1.0,
        higher_is_better: true,
        source: &SCALABILITY,
    },
    Figure {
        what: "Server, downloads of 10 kB by 100 clients",
        scenario_id: "server.load/download/10k/c100",
        metric: "ops_s",
        then: 287.0,
        then_spread: None,
        unit: "req/s",
        scale: 1.0,
        higher_is_better: true,
        source: &SCALABILITY,
    },
];

impl Figure {
    /// How many times better ours is (below 1: worse), from our value in the figure's unit.
    pub fn times_better(&self, ours: f64) -> f64 {
        if self.higher_is_better {
            ours / self.then
        } else {
            self.then / ours
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn better_reads_the_same_way_for_times_and_rates() {
        let slow = &FIGURES[1];
        assert!(!slow.higher_is_better);
        assert!((slow.times_better(2.59) - 2.0).abs() < 1e-9);
        let rate = &FIGURES[7];
        assert!((rate.times_better(24.8) - 2.0).abs() < 1e-9);
        for f in FIGURES {
            assert!(contract::metrics::lookup(f.metric).is_some(), "{}", f.metric);
        }
    }
}
