use contract::results::{Machine, MachineInfo};
use sha2::{Digest, Sha256};

/// Memory is rounded to this granularity: some virtual machines report a few MiB more or
/// less after a reboot, which must not make them a new machine.
const MEMORY_GRANULE: u64 = 256 << 20;

/// A stable identity for a machine: a hash of the facts that do not change between runs
/// (CPU model, cores, memory, kernel, OS, architecture, compiler, build profile). Volatile
/// readings (load, frequency) are covariates, never part of it. Series never mix
/// fingerprints.
pub fn fingerprint(m: &MachineInfo) -> String {
    fingerprint_of(&m.machine)
}

pub(crate) fn fingerprint_of(m: &Machine) -> String {
    let facts = serde_json::json!({
        "cpu_model": m.cpu_model,
        "logical_cores": m.logical_cores,
        "physical_cores": m.physical_cores,
        "memory": (m.memory_bytes + MEMORY_GRANULE / 2) / MEMORY_GRANULE,
        "kernel": m.kernel,
        "os": m.os,
        "arch": m.arch,
        "rustc": m.rustc,
        "profile": m.profile,
    });
    hex::encode(&Sha256::digest(facts.to_string().as_bytes())[..8])
}
