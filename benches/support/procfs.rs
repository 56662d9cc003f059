//! Process CPU time and resident memory from `/proc`, with no `unsafe`.

use std::collections::HashMap;
use std::fs;

/// CPU time (user + system) of this process's threads, per thread id, in
/// nanoseconds.
///
/// Read from the first field of `/proc/self/task/*/schedstat` (time on a
/// CPU, nanosecond resolution). Compare two snapshots with
/// [`CpuSnapshot::ns_since`], which counts each thread only from when it
/// was first seen, so a thread that exits in between cannot make the total
/// go backwards. Where schedstat is missing, the whole process's
/// `utime + stime` from `/proc/self/stat` is used instead (clock ticks,
/// assumed 100 per second, so 10 ms resolution).
pub struct CpuSnapshot(HashMap<u64, u64>);

impl CpuSnapshot {
    /// Reads every thread's CPU time now.
    pub fn take() -> Self {
        CpuSnapshot(schedstat_ns().unwrap_or_else(|| HashMap::from([(0, stat_ns())])))
    }

    /// CPU time burnt since `earlier` by threads alive now.
    pub fn ns_since(&self, earlier: &CpuSnapshot) -> u64 {
        self.0.iter().map(|(tid, &ns)| ns.saturating_sub(earlier.0.get(tid).copied().unwrap_or(0))).sum()
    }
}

fn schedstat_ns() -> Option<HashMap<u64, u64>> {
    let mut per_thread = HashMap::new();
    for task in fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        let Some(tid) = task.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else { continue };
        // A thread can exit between listing and reading: skip it.
        let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        per_thread.insert(tid, text.split_whitespace().next()?.parse::<u64>().ok()?);
    }
    Some(per_thread)
}

fn stat_ns() -> u64 {
    const NS_PER_TICK: u64 = 10_000_000;
    let text = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; fields after it are plain.
    let after_comm = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the `)`.
    let ticks: u64 = fields.get(11..13).unwrap_or_default().iter().filter_map(|f| f.parse::<u64>().ok()).sum();
    ticks * NS_PER_TICK
}

/// Resident set size in bytes: `/proc/self/statm` field 2 (pages) times
/// the page size, which is read from `/proc/self/smaps` (4 KiB if absent).
pub fn rss_bytes() -> u64 {
    let pages: u64 = fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("KernelPageSize:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(4096)
}

/// `model name` of the first CPU in `/proc/cpuinfo`, if any.
pub fn cpu_model() -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// Machine-wide and own CPU time, in clock ticks, to tell how much of the
/// machine other processes used while a scenario ran.
pub struct LoadSnapshot {
    /// Busy ticks of all CPUs (user, nice, system, irq, softirq, steal).
    busy: u64,
    /// All ticks of all CPUs (busy plus idle and iowait).
    total: u64,
    /// This process's ticks, its waited-for children (E) included.
    own: u64,
}

impl LoadSnapshot {
    /// Reads `/proc/stat` and `/proc/self/stat` now.
    pub fn take() -> Self {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> =
            stat.lines().next().unwrap_or("").split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
        let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        let total = busy + field(3) + field(4);
        let own_stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after_comm = own_stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        // utime, stime, cutime, cstime: fields 14 to 17, i.e. 11 to 14 after `)`.
        let own = after_comm.split_whitespace().skip(11).take(4).filter_map(|f| f.parse::<u64>().ok()).sum();
        LoadSnapshot { busy, total, own }
    }

    /// Share of the machine's CPU capacity (0 to 1) that other processes,
    /// and the hypervisor's steal, took since `earlier`.
    pub fn foreign_since(&self, earlier: &LoadSnapshot) -> f64 {
        let busy = self.busy.saturating_sub(earlier.busy);
        let own = self.own.saturating_sub(earlier.own);
        let total = self.total.saturating_sub(earlier.total).max(1);
        busy.saturating_sub(own) as f64 / total as f64
    }
}
