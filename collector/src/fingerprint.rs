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

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpu_model: "Test CPU".into(),
            logical_cores: 2,
            physical_cores: Some(1),
            memory_bytes: 24 << 30,
            kernel: "6.1.0".into(),
            os: "Debian 12".into(),
            arch: "x86_64".into(),
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            profile: "release".into(),
        }
    }

    /// A compiler upgrade is a new machine, so its numbers start new series instead of a step
    /// in the old ones; memory read a few MiB apart after a reboot is not.
    #[test]
    fn the_compiler_is_part_of_the_identity_and_a_few_mib_are_not() {
        let m = machine();
        let upgraded = Machine {
            rustc: "rustc 1.96.0 (0123456789 2026-05-28)".into(),
            ..m.clone()
        };
        assert_ne!(fingerprint_of(&m), fingerprint_of(&upgraded));
        let rebooted = Machine {
            memory_bytes: m.memory_bytes - (3 << 20),
            ..m.clone()
        };
        assert_eq!(fingerprint_of(&m), fingerprint_of(&rebooted));
    }
}
