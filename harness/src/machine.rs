//! The machine a run happens on: stable facts for the fingerprint, volatile readings as
//! covariates.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use contract::results::{Covariates, Machine, MachineInfo};

/// Reads the machine facts. `profile` is the cargo profile the measured binaries were built
/// with.
pub fn describe(profile: &str) -> MachineInfo {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_frequency())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .ok();
    let cpus = sys.as_ref().map(|s| s.cpus()).unwrap_or_default();
    let cpu_model = cpus.first().map(|c| c.brand().trim().to_owned()).unwrap_or_default();
    let cpu_mhz = if cpus.is_empty() {
        0
    } else {
        cpus.iter().map(|c| c.frequency()).sum::<u64>() / cpus.len() as u64
    };
    MachineInfo {
        machine: Machine {
            cpu_model: if cpu_model.is_empty() {
                "unknown".into()
            } else {
                cpu_model
            },
            logical_cores: cpus.len() as u32,
            physical_cores: System::physical_core_count().ok().map(|n| n as u32),
            memory_bytes: sys.as_ref().map_or(0, |s| s.total_memory()),
            kernel: System::kernel_version().unwrap_or_else(|_| "unknown".into()),
            os: System::long_os_version().unwrap_or_else(|_| "unknown".into()),
            arch: std::env::consts::ARCH.into(),
            rustc: env!("SOLEDAD_BENCH_RUSTC").into(),
            profile: profile.into(),
        },
        covariates: Covariates {
            load_avg_1m: System::load_average().map_or(0.0, |l| l.one),
            cpu_mhz,
        },
    }
}
