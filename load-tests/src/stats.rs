//! Measurements: the server's CPU time and memory from /proc, latency histograms, the machine and its load.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// CPU time (user + system, in clock ticks) and memory of a process, read from /proc/<pid>/{stat,status}.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> anyhow::Result<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name is in parentheses and may hold spaces: count fields after the last ')'.
        let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow::anyhow!("bad /proc stat"))? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the state field.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(ProcSample { cpu_ticks: utime + stime, rss_kib: kib("VmRSS:"), peak_rss_kib: kib("VmHWM:") })
    }
}

/// Percent of one core used between two samples `secs` apart.
pub fn cpu_percent(before: ProcSample, after: ProcSample, secs: f64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (after.cpu_ticks.saturating_sub(before.cpu_ticks)) as f64 / hz / secs * 100.0
}

/// A latency histogram in microseconds, up to one minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// p50, p99 and max of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}

/// The one-minute load average, to judge how noisy a run was.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// `"<n> cores, <model name>"` from nproc and lscpu's source, /proc/cpuinfo.
pub fn machine() -> String {
    // Count the machine's processors, not this process's affinity (the generator pins itself to one core).
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cores} cores ({model}), {mem_gib:.0} GiB RAM")
}

/// Raises this process's open-file limit (soft and hard; root may raise the hard one) so tens of thousands of
/// sockets fit; children inherit it.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write and read the plain struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let raised = libc::rlimit { rlim_cur: want, rlim_max: want.max(lim.rlim_max) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let soft = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Pins the calling process (all its threads created afterwards) to one core.
pub fn pin_to_core(core: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Puts this process, and the server it starts (which inherits it), ahead of other work on a shared machine:
/// nice `nice` for the process, and for its session's *autogroup*. With `kernel.sched_autogroup_enabled` (on
/// by default) the scheduler first shares a core fairly between sessions and only then between the processes
/// of a session, so a process's own nice ranks it only within its session: a `cargo build` started from
/// another terminal took about half of each core from both the generator and the server, whatever their nice.
/// Raising priority needs CAP_SYS_NICE; without it this changes nothing. The guard puts the autogroup's nice
/// back (it is shared with the shell that started us).
pub fn raise_priority(nice: i32) -> AutogroupNice {
    // SAFETY: setpriority on this process only.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    let path = "/proc/self/autogroup";
    // "/autogroup-42 nice 0"
    let before =
        std::fs::read_to_string(path).ok().and_then(|s| s.split_whitespace().nth(2).and_then(|n| n.parse().ok()));
    let changed = before.is_some_and(|old: i32| old != nice && std::fs::write(path, nice.to_string()).is_ok());
    AutogroupNice { restore: if changed { before } else { None } }
}

/// Restores the session's autogroup nice when dropped.
pub struct AutogroupNice {
    restore: Option<i32>,
}

impl Drop for AutogroupNice {
    fn drop(&mut self) {
        if let Some(old) = self.restore {
            let _ = std::fs::write("/proc/self/autogroup", old.to_string());
        }
    }
}
