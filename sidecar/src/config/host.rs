//! What the config layer reads from the machine: the environment, `/etc/passwd` and
//! `/etc/group` (parsed here: the release binary is static, so there is no NSS), the
//! cgroup CPU quota, the working and temp directories. Kept in one struct so tests
//! inject every one of them; the parsers are pure functions over file contents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::pool::MAX_WORKERS;

/// The machine as the config layer sees it.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    pub env: HashMap<String, String>,
    pub passwd: PathBuf,
    pub group: PathBuf,
    /// Where cgroup files are mounted (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// CPUs when no cgroup quota applies (`available_parallelism`).
    pub fallback_cpus: usize,
    pub temp_dir: PathBuf,
    pub cwd: PathBuf,
}

impl Host {
    /// The real machine.
    pub fn current() -> Host {
        Host {
            env: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            passwd: PathBuf::from("/etc/passwd"),
            group: PathBuf::from("/etc/group"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            fallback_cpus: std::thread::available_parallelism().map_or(1, usize::from),
            temp_dir: std::env::temp_dir(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }

    /// The default `num_workers`: the CPUs the cgroup quota allows (rounded up), else
    /// the CPUs this process may run on; at least 1, at most [`MAX_WORKERS`].
    pub fn default_workers(&self) -> usize {
        cgroup_cpus(&self.cgroup_root)
            .unwrap_or(self.fallback_cpus)
            .clamp(1, MAX_WORKERS)
    }
}

/// CPUs allowed by the cgroup under `root`: v2 `cpu.max`, else v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us` in the usual mount points. `None` = no quota.
pub(crate) fn cgroup_cpus(root: &Path) -> Option<usize> {
    if let Ok(text) = std::fs::read_to_string(root.join("cpu.max")) {
        return cpus_from_cpu_max(&text);
    }
    for dir in ["cpu", "cpu,cpuacct", "cpuacct,cpu", ""] {
        let d = root.join(dir);
        let quota = std::fs::read_to_string(d.join("cpu.cfs_quota_us"));
        let period = std::fs::read_to_string(d.join("cpu.cfs_period_us"));
        if let (Ok(q), Ok(p)) = (quota, period) {
            return cpus_from_cfs(&q, &p);
        }
    }
    None
}

/// cgroup v2 `cpu.max`: `"<quota> <period>"` or `"max <period>"` (no limit).
pub(crate) fn cpus_from_cpu_max(text: &str) -> Option<usize> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?;
    let period = parts.next().unwrap_or("100000");
    if quota == "max" {
        return None;
    }
    cpus(quota.parse().ok()?, period.parse().ok()?)
}

/// cgroup v1: `cpu.cfs_quota_us` (`-1` = no limit) and `cpu.cfs_period_us`.
pub(crate) fn cpus_from_cfs(quota: &str, period: &str) -> Option<usize> {
    let quota: i64 = quota.trim().parse().ok()?;
    if quota <= 0 {
        return None;
    }
    cpus(quota as u64, period.trim().parse().ok()?)
}

/// `quota / period` rounded up (1.5 CPUs → 2 workers keep the quota busy), at least 1.
fn cpus(quota: u64, period: u64) -> Option<usize> {
    if quota == 0 || period == 0 {
        return None;
    }
    Some(
        usize::try_from(quota.div_ceil(period))
            .unwrap_or(usize::MAX)
            .max(1),
    )
}

/// A user from `/etc/passwd`: `name:password:uid:gid:gecos:home:shell`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub uid: u32,
    pub gid: u32,
}

/// Finds `name` in passwd text. Comments, blank and malformed lines are skipped.
pub(crate) fn find_user(passwd: &str, name: &str) -> Option<PasswdEntry> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let n = f.next()?;
        if n != name || n.starts_with('#') {
            return None;
        }
        let _password = f.next()?;
        Some(PasswdEntry {
            uid: f.next()?.trim().parse().ok()?,
            gid: f.next()?.trim().parse().ok()?,
        })
    })
}

/// Finds a user by uid (for the primary group of a numeric `server.user`).
pub(crate) fn find_uid(passwd: &str, uid: u32) -> Option<PasswdEntry> {
    passwd.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        let entry = PasswdEntry {
            uid: f.get(2)?.trim().parse().ok()?,
            gid: f.get(3)?.trim().parse().ok()?,
        };
        (entry.uid == uid).then_some(entry)
    })
}

/// Finds a group's gid in `/etc/group` text: `name:password:gid:members`.
pub(crate) fn find_group(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|line| {
        let mut f = line.split(':');
        let n = f.next()?;
        if n != name || n.starts_with('#') {
            return None;
        }
        let _password = f.next()?;
        f.next()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment:x:1:1
root:x:0:0:root:/root:/bin/bash
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
broken line
app:x:1000:1001::/home/app:/bin/sh
weird:x:notanumber:5::/:/bin/false
";
    const GROUP: &str = "\
root:x:0:
www-data:x:33:
staff:x:50:alice,bob
bad:x:
";

    #[test]
    fn passwd_lookup() {
        assert_eq!(
            find_user(PASSWD, "www-data"),
            Some(PasswdEntry { uid: 33, gid: 33 })
        );
        assert_eq!(
            find_user(PASSWD, "app"),
            Some(PasswdEntry {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(find_user(PASSWD, "nobody"), None);
        assert_eq!(find_user(PASSWD, "weird"), None);
        assert_eq!(find_user(PASSWD, "broken line"), None);
        assert_eq!(find_user(PASSWD, "# comment"), None);
        assert_eq!(
            find_uid(PASSWD, 1000),
            Some(PasswdEntry {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(find_uid(PASSWD, 4242), None);
    }

    #[test]
    fn group_lookup() {
        assert_eq!(find_group(GROUP, "staff"), Some(50));
        assert_eq!(find_group(GROUP, "root"), Some(0));
        assert_eq!(find_group(GROUP, "bad"), None);
        assert_eq!(find_group(GROUP, "missing"), None);
    }

    #[test]
    fn cgroup_v2_cpu_max() {
        let cases = [
            ("max 100000\n", None),
            ("200000 100000\n", Some(2)),
            ("150000 100000\n", Some(2)),
            ("50000 100000\n", Some(1)),
            ("1000 100000\n", Some(1)),
            ("400000\n", Some(4)),
            ("0 100000", None),
            ("100000 0", None),
            ("garbage", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(cpus_from_cpu_max(text), want, "{text:?}");
        }
    }

    #[test]
    fn cgroup_v1_cfs() {
        let cases = [
            ("-1\n", "100000\n", None),
            ("100000\n", "100000\n", Some(1)),
            ("250000\n", "100000\n", Some(3)),
            ("50000", "100000", Some(1)),
            ("x", "100000", None),
            ("100000", "0", None),
        ];
        for (q, p, want) in cases {
            assert_eq!(cpus_from_cfs(q, p), want, "{q:?}/{p:?}");
        }
    }

    #[test]
    fn cgroup_files_v2_then_v1_then_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = Host {
            env: HashMap::new(),
            passwd: PathBuf::new(),
            group: PathBuf::new(),
            cgroup_root: dir.path().to_path_buf(),
            fallback_cpus: 3,
            temp_dir: PathBuf::from("/tmp"),
            cwd: PathBuf::from("/"),
        };
        assert_eq!(host.default_workers(), 3, "no cgroup files: fallback");

        std::fs::create_dir(dir.path().join("cpu,cpuacct")).unwrap();
        std::fs::write(dir.path().join("cpu,cpuacct/cpu.cfs_quota_us"), "150000\n").unwrap();
        std::fs::write(dir.path().join("cpu,cpuacct/cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(host.default_workers(), 2, "v1 quota rounded up");

        std::fs::write(dir.path().join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(host.default_workers(), 3, "v2 without a limit wins over v1");
        std::fs::write(dir.path().join("cpu.max"), "600000 100000\n").unwrap();
        assert_eq!(host.default_workers(), 6);

        std::fs::write(dir.path().join("cpu.max"), "900000000 100000\n").unwrap();
        assert_eq!(host.default_workers(), MAX_WORKERS, "capped");
        host.fallback_cpus = 0;
        std::fs::remove_file(dir.path().join("cpu.max")).unwrap();
        std::fs::remove_dir_all(dir.path().join("cpu,cpuacct")).unwrap();
        assert_eq!(host.default_workers(), 1, "at least one");
    }
}
