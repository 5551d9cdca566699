//! How many CPUs the gateway may use, for `threads: auto`: the container's CPU limit (its
//! cgroup's CPU quota) when it has one, else the CPUs the process may run on.
//!
//! A Kubernetes CPU limit becomes a CFS quota (`cpu.max` in cgroup v2, `cpu.cfs_quota_us`
//! over `cpu.cfs_period_us` in v1), not a smaller CPU set: the node's CPUs all stay
//! visible, so sizing by CPU count alone would start 32 worker threads in a pod limited to
//! 2 CPUs, and the kernel would throttle them.

use crate::config::Threads;

/// The worker thread count chosen, and why, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadChoice {
    /// Worker threads.
    pub threads: usize,
    /// Where the number comes from, e.g. `cgroup v2 cpu.max "150000 100000" (1.5 CPUs, rounded up)`.
    pub why: String,
}

/// Resolves the configured thread count, reading the cgroup files for `auto`.
pub fn choose(threads: Threads) -> ThreadChoice {
    match threads {
        Threads::Fixed(n) => ThreadChoice {
            threads: n,
            why: "threads in the configuration".into(),
        },
        Threads::Auto => auto(&read_cgroup),
    }
}

/// `auto` with the cgroup files read through `read` (a path in, its text out).
fn auto(read: &dyn Fn(&str) -> Option<String>) -> ThreadChoice {
    let v2 = cgroup_v2_path(read)
        .and_then(|path| read(&path).map(|text| (path, text)))
        .or_else(|| read(V2_ROOT).map(|text| (V2_ROOT.to_owned(), text)));
    if let Some((path, text)) = v2 {
        match quota_from_cpu_max(&text) {
            Some(quota) => return from_quota(quota, &format!("cgroup v2 {path}")),
            None => return fallback(&format!("no CPU limit in {path}")),
        }
    }
    for dir in V1_DIRS {
        let quota = read(&format!("{dir}/cpu.cfs_quota_us"));
        let period = read(&format!("{dir}/cpu.cfs_period_us"));
        if let (Some(quota), Some(period)) = (quota, period) {
            return match quota_from_cfs(&quota, &period) {
                Some(q) => from_quota(q, &format!("cgroup v1 {dir}/cpu.cfs_quota_us")),
                None => fallback(&format!("no CPU limit in {dir}/cpu.cfs_quota_us")),
            };
        }
    }
    fallback("no cgroup CPU controller found")
}

const V2_ROOT: &str = "/sys/fs/cgroup/cpu.max";
const V1_DIRS: [&str; 2] = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"];

/// A CPU quota: `quota` µs of CPU time per `period` µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// CPU time allowed per period.
    pub quota: u64,
    /// The period.
    pub period: u64,
}

impl Quota {
    /// The CPUs the quota allows, rounded up (1.5 CPUs → 2 threads: one thread could use
    /// only two thirds of it), and at least 1.
    pub fn cpus(self) -> usize {
        (self.quota.div_ceil(self.period) as usize).max(1)
    }
}

/// Parses cgroup v2 `cpu.max`: `"<quota> <period>"`, or `"max <period>"` for no limit.
pub fn quota_from_cpu_max(text: &str) -> Option<Quota> {
    let mut fields = text.split_ascii_whitespace();
    let quota = fields.next()?.parse().ok()?;
    let period = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    (period > 0 && quota > 0).then_some(Quota { quota, period })
}

/// Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; a quota of `-1` is no
/// limit.
pub fn quota_from_cfs(quota: &str, period: &str) -> Option<Quota> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then_some(Quota {
        quota: quota as u64,
        period,
    })
}

/// The process's own cgroup v2 folder from `/proc/self/cgroup` (`0::/path`), when the
/// container does not have a cgroup namespace of its own.
fn cgroup_v2_path(read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let text = read("/proc/self/cgroup")?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    (path != "/" && !path.is_empty()).then(|| format!("/sys/fs/cgroup{path}/cpu.max"))
}

fn from_quota(quota: Quota, source: &str) -> ThreadChoice {
    ThreadChoice {
        threads: quota.cpus(),
        why: format!(
            "{source}: a quota of {:.2} CPUs, rounded up",
            quota.quota as f64 / quota.period as f64
        ),
    }
}

fn fallback(reason: &str) -> ThreadChoice {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    ThreadChoice {
        threads,
        why: format!("{reason}: the {threads} CPUs this process may run on"),
    }
}

fn read_cgroup(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn cgroup_v2_cpu_max_is_a_quota_over_a_period_or_max() {
        assert_eq!(
            quota_from_cpu_max("150000 100000\n").map(Quota::cpus),
            Some(2)
        );
        assert_eq!(
            quota_from_cpu_max("200000 100000").map(Quota::cpus),
            Some(2)
        );
        assert_eq!(quota_from_cpu_max("50000 100000").map(Quota::cpus), Some(1));
        assert_eq!(quota_from_cpu_max("1000 100000").map(Quota::cpus), Some(1));
        assert_eq!(quota_from_cpu_max("max 100000\n"), None);
        assert_eq!(quota_from_cpu_max(""), None);
        assert_eq!(quota_from_cpu_max("100000 0"), None);
        assert_eq!(quota_from_cpu_max("garbage"), None);
    }

    #[test]
    fn cgroup_v1_quota_minus_one_is_no_limit() {
        assert_eq!(
            quota_from_cfs("250000\n", "100000\n").map(Quota::cpus),
            Some(3)
        );
        assert_eq!(quota_from_cfs("-1\n", "100000\n"), None);
        assert_eq!(quota_from_cfs("x", "100000"), None);
    }

    fn files(list: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |path| map.get(path).cloned()
    }

    #[test]
    fn auto_takes_the_own_cgroup_then_the_namespace_root_then_v1() {
        let own = files(&[
            ("/proc/self/cgroup", "0::/kubepods/pod1/c1\n"),
            ("/sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "150000 100000\n"),
            ("/sys/fs/cgroup/cpu.max", "max 100000\n"),
        ]);
        let choice = auto(&own);
        assert_eq!(choice.threads, 2);
        assert!(choice.why.contains("1.50 CPUs"), "{}", choice.why);

        let namespaced = files(&[
            ("/proc/self/cgroup", "0::/\n"),
            ("/sys/fs/cgroup/cpu.max", "300000 100000\n"),
        ]);
        assert_eq!(auto(&namespaced).threads, 3);

        let v1 = files(&[
            ("/proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n"),
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "400000\n"),
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(auto(&v1).threads, 4);
    }

    #[test]
    fn without_a_limit_auto_takes_the_cpu_count() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let unlimited = files(&[("/sys/fs/cgroup/cpu.max", "max 100000\n")]);
        let choice = auto(&unlimited);
        assert_eq!(choice.threads, cpus);
        assert!(choice.why.starts_with("no CPU limit"), "{}", choice.why);
        assert_eq!(auto(&files(&[])).threads, cpus);
    }

    #[test]
    fn a_fixed_count_is_taken_as_it_is() {
        assert_eq!(choose(Threads::Fixed(3)).threads, 3);
    }
}
