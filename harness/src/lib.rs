//! The harness: runs scenarios against the real stack and writes results JSON.
//!
//! It never measures itself. For each scenario it starts a `blobs-server` on a fresh data
//! directory and, for each round, a client driver (`soledad-bench drive`) with a fresh local
//! store. Once the driver has prepared its workload, the harness reads both processes'
//! counters from `/proc`, starts sampling their memory, tells the driver to go, and reads the
//! counters again when it is done. Finished rounds' and scenarios' small files are deleted
//! only when the process ends (`trash`), so that one cleanup does not slow the next
//! measurement down. See `RESULTS.md` for the output.

pub mod binaries;
pub mod commit;
pub mod count;
pub mod driver;
pub mod fixed_rate;
pub mod machine;
pub mod ping;
pub mod probe;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod trash;

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error(transparent)]
    Commit(#[from] commit::CommitError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed to start: {0}")]
    ServerStart(String),
    #[error("scenario {scenario}, round {round}: {message}")]
    Round {
        scenario: String,
        round: u32,
        message: String,
    },
    #[error("cannot find the blobs-server binary: {0}")]
    ServerBinary(String),
    #[error(transparent)]
    Results(#[from] contract::results::ResultsError),
    #[error("interrupted")]
    Interrupted,
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
