//! The container's own cgroup, as the kernel enforces it: memory working set and limit,
//! OOM kills, CPU throttling. cgroup v1 and v2.
//!
//! Why pacer reads it: the operator sizes the memory limit, and the kernel's OOM killer
//! judges the cgroup — not the sum of the workers' RSS (which counts opcache's shared
//! pages in every worker and misses the page cache and the allocations between two
//! samples). Under cgroup v1 (and v2 without `memory.oom.group`) the OOM killer takes the
//! largest process — a PHP worker — and the container lives on, so no pod status ever says
//! OOMKilled: only the cgroup's `oom_kill` counter does. And a CPU limit shows as
//! throttled periods in `cpu.stat`, which the CPU time alone cannot tell.
//!
//! The parsers are pure ([`locate`], [`parse_flat_keyed`], [`parse_limit`]) and tested on
//! fixtures of both versions; [`Cgroup::discover`] finds the files once from
//! `/proc/self/cgroup` and `/proc/self/mountinfo` (under a root prefix, for tests) and
//! [`Cgroup::read`] reads them at scrape time (a few small files, no state).
//!
//! * Working set = usage − inactive file pages, as the kubelet computes it for eviction
//!   and `kubectl top` (v1: `memory.usage_in_bytes` − `total_inactive_file`; v2:
//!   `memory.current` − `inactive_file`).
//! * OOM kills: v1 `memory.oom_control` `oom_kill` (Linux ≥ 4.13), v2 `memory.events`
//!   `oom_kill`.
//! * Throttling: `cpu.stat` `nr_periods`, `nr_throttled`, and `throttled_time` (v1, ns) or
//!   `throttled_usec` (v2).
//!
//! With both hierarchies mounted (hybrid), a controller is read from v1 when v1 has it
//! and from v2 otherwise, as the kernel attaches each controller to one hierarchy only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy a controller is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// cgroup v1: one hierarchy per controller.
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

/// The directories of this process's memory and CPU cgroups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locations {
    /// The memory controller's directory.
    pub memory: Option<(Version, PathBuf)>,
    /// The CPU controller's directory.
    pub cpu: Option<(Version, PathBuf)>,
}

/// One read of the cgroup. A field is `None` when its file is missing or unreadable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Usage minus inactive file pages, bytes.
    pub memory_working_set: Option<u64>,
    /// The memory limit, bytes; `None` also when unlimited.
    pub memory_limit: Option<u64>,
    /// Processes the OOM killer killed in this cgroup.
    pub oom_kills: Option<u64>,
    /// CFS periods that elapsed with runnable tasks.
    pub cpu_periods: Option<u64>,
    /// Periods in which the quota ran out.
    pub cpu_throttled_periods: Option<u64>,
    /// Time the tasks were throttled, seconds.
    pub cpu_throttled_seconds: Option<f64>,
}

/// One line of `/proc/self/cgroup`: `hierarchy-ID:controller-list:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Membership<'a> {
    controllers: Vec<&'a str>,
    path: &'a str,
    unified: bool,
}

fn memberships(proc_cgroup: &str) -> Vec<Membership<'_>> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(Membership {
                controllers: controllers.split(',').filter(|c| !c.is_empty()).collect(),
                path,
                unified: id == "0" && controllers.is_empty(),
            })
        })
        .collect()
}

/// A cgroup mount from `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mount<'a> {
    root: &'a str,
    point: &'a str,
    v2: bool,
    /// v1: the controllers (super options) of the hierarchy.
    options: Vec<&'a str>,
}

fn mounts(mountinfo: &str) -> Vec<Mount<'_>> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // ID parent major:minor root mount-point options [optional…] - type source super
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let (root, point) = (*fields.get(3)?, *fields.get(4)?);
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next();
            let options = right.next().unwrap_or_default();
            match fstype {
                "cgroup2" => Some(Mount {
                    root,
                    point,
                    v2: true,
                    options: Vec::new(),
                }),
                "cgroup" => Some(Mount {
                    root,
                    point,
                    v2: false,
                    options: options.split(',').collect(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// `path` below a mount whose root is `root`, as a directory under the mount point.
fn under(mount: &Mount<'_>, path: &str) -> Option<PathBuf> {
    let relative = if mount.root == "/" {
        path
    } else {
        // The mount shows a subtree (a container without a cgroup namespace, or nested).
        path.strip_prefix(mount.root)?
    };
    Some(Path::new(&unescape(mount.point)).join(relative.trim_start_matches('/')))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Where this process's memory and CPU controllers are, from the text of
/// `/proc/self/cgroup` and `/proc/self/mountinfo`. `v2_controllers` lists the controllers
/// the unified hierarchy offers this cgroup (its `cgroup.controllers`), so that a hybrid
/// system's controller-less v2 mount is not mistaken for the place to read.
#[must_use]
pub fn locate(proc_cgroup: &str, mountinfo: &str, v2_controllers: &[&str]) -> Locations {
    let members = memberships(proc_cgroup);
    let mounts = mounts(mountinfo);
    let v1 = |controller: &str| {
        let member = members
            .iter()
            .find(|m| !m.unified && m.controllers.contains(&controller))?;
        let mount = mounts
            .iter()
            .find(|m| !m.v2 && m.options.contains(&controller))?;
        under(mount, member.path).map(|p| (Version::V1, p))
    };
    let v2 = |controller: &str| {
        if !v2_controllers.contains(&controller) {
            return None;
        }
        let member = members.iter().find(|m| m.unified)?;
        let mount = mounts.iter().find(|m| m.v2)?;
        under(mount, member.path).map(|p| (Version::V2, p))
    };
    Locations {
        memory: v1("memory").or_else(|| v2("memory")),
        cpu: v1("cpu").or_else(|| v2("cpu")),
    }
}

/// The unified hierarchy's directory for this process (where `cgroup.controllers` is), if
/// there is one.
#[must_use]
pub fn unified_dir(proc_cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    let members = memberships(proc_cgroup);
    let member = members.iter().find(|m| m.unified)?;
    let mounts = mounts(mountinfo);
    under(mounts.iter().find(|m| m.v2)?, member.path)
}

/// Parses a flat keyed file (`memory.stat`, `memory.events`, `cpu.stat`,
/// `memory.oom_control`): `key value` per line.
#[must_use]
pub fn parse_flat_keyed(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(' ')?;
            Some((key, value.trim().parse().ok()?))
        })
        .collect()
}

/// Limits at or above this are "no limit" (v1 writes `PAGE_COUNTER_MAX` × page size,
/// 9223372036854771712 on x86-64).
const UNLIMITED: u64 = 1 << 62;

/// Parses a memory limit file (v1 `memory.limit_in_bytes`, v2 `memory.max`); `None` when
/// unlimited or not a number.
#[must_use]
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse().ok().filter(|&v| v < UNLIMITED)
}

/// A discovered cgroup, read at each scrape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cgroup {
    locations: Locations,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl Cgroup {
    /// This process's cgroup. Nothing is found off Linux or without cgroups: every
    /// [`Sample`] field is then `None` and the metrics are left out.
    #[must_use]
    pub fn discover() -> Self {
        Self::discover_under(Path::new("/"))
    }

    /// As [`Self::discover`], with `/proc` and the mount points under `root` (tests point
    /// it at fixture trees).
    #[must_use]
    pub fn discover_under(root: &Path) -> Self {
        let at = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        let (Some(proc_cgroup), Some(mountinfo)) = (
            read(&at(Path::new("/proc/self/cgroup"))),
            read(&at(Path::new("/proc/self/mountinfo"))),
        ) else {
            return Self::default();
        };
        let controllers = unified_dir(&proc_cgroup, &mountinfo)
            .and_then(|dir| read(&at(&dir.join("cgroup.controllers"))))
            .unwrap_or_default();
        let v2: Vec<&str> = controllers.split_whitespace().collect();
        let found = locate(&proc_cgroup, &mountinfo, &v2);
        Self {
            locations: Locations {
                memory: found.memory.map(|(v, p)| (v, at(&p))),
                cpu: found.cpu.map(|(v, p)| (v, at(&p))),
            },
        }
    }

    /// Where the files are.
    #[must_use]
    pub fn locations(&self) -> &Locations {
        &self.locations
    }

    /// Reads the cgroup now.
    #[must_use]
    pub fn read(&self) -> Sample {
        let mut sample = Sample::default();
        if let Some((version, dir)) = &self.locations.memory {
            let file = |name: &str| read(&dir.join(name));
            let (usage, limit, inactive_key) = match version {
                Version::V1 => (
                    "memory.usage_in_bytes",
                    "memory.limit_in_bytes",
                    "total_inactive_file",
                ),
                Version::V2 => ("memory.current", "memory.max", "inactive_file"),
            };
            let usage: Option<u64> = file(usage).and_then(|t| t.trim().parse().ok());
            let stat = file("memory.stat").unwrap_or_default();
            let inactive = parse_flat_keyed(&stat)
                .get(inactive_key)
                .copied()
                .unwrap_or(0);
            sample.memory_working_set = usage.map(|u| u.saturating_sub(inactive));
            sample.memory_limit = file(limit).as_deref().and_then(parse_limit);
            let events = match version {
                Version::V1 => file("memory.oom_control"),
                Version::V2 => file("memory.events"),
            };
            sample.oom_kills = events
                .as_deref()
                .and_then(|t| parse_flat_keyed(t).get("oom_kill").copied());
        }
        if let Some((version, dir)) = &self.locations.cpu {
            let stat = read(&dir.join("cpu.stat")).unwrap_or_default();
            let stat = parse_flat_keyed(&stat);
            sample.cpu_periods = stat.get("nr_periods").copied();
            sample.cpu_throttled_periods = stat.get("nr_throttled").copied();
            sample.cpu_throttled_seconds = match version {
                Version::V1 => stat.get("throttled_time").map(|ns| *ns as f64 / 1e9),
                Version::V2 => stat.get("throttled_usec").map(|us| *us as f64 / 1e6),
            };
        }
        sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cgroup");

    /// This machine's kind: v1 controllers, plus an empty v2 hierarchy (hybrid), no cgroup
    /// namespace (the paths are the host's).
    const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_reads_v1() {
        let l = locate(HYBRID_CGROUP, HYBRID_MOUNTS, &[]);
        assert_eq!(
            l.memory,
            Some((
                Version::V1,
                PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
            ))
        );
        assert_eq!(
            l.cpu,
            Some((Version::V1, PathBuf::from("/sys/fs/cgroup/cpu")))
        );
    }

    #[test]
    fn a_container_with_a_cgroup_namespace_reads_v2_at_the_mount() {
        let l = locate(
            "0::/\n",
            "1140 1131 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            &["cpuset", "cpu", "io", "memory", "pids"],
        );
        assert_eq!(
            l.memory,
            Some((Version::V2, PathBuf::from("/sys/fs/cgroup")))
        );
        assert_eq!(l.cpu, Some((Version::V2, PathBuf::from("/sys/fs/cgroup"))));
        // A v2 hierarchy that does not offer the controllers has nothing to read.
        let none = locate(
            "0::/\n",
            "1 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            &[],
        );
        assert_eq!(none, Locations::default());
    }

    #[test]
    fn a_v1_mount_of_a_subtree_strips_its_root() {
        let l = locate(
            "5:memory:/kubepods/burstable/pod1/c1\n",
            "40 31 0:32 /kubepods/burstable/pod1/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
            &[],
        );
        assert_eq!(
            l.memory,
            Some((Version::V1, PathBuf::from("/sys/fs/cgroup/memory")))
        );
        assert_eq!(l.cpu, None);
    }

    #[test]
    fn flat_keyed_files_and_limits() {
        let stat =
            parse_flat_keyed("nr_periods 10\nnr_throttled 3\nthrottled_usec 4500\nbad line x\n");
        assert_eq!(stat.get("nr_throttled"), Some(&3));
        assert_eq!(stat.get("bad"), None);
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_limit("junk"), None);
    }

    #[test]
    fn v1_fixture() {
        let c = Cgroup::discover_under(&Path::new(FIXTURES).join("v1"));
        assert_eq!(
            c.locations().memory.as_ref().map(|m| m.0),
            Some(Version::V1)
        );
        let s = c.read();
        // usage 314572800 − total_inactive_file 41943040.
        assert_eq!(s.memory_working_set, Some(272_629_760));
        assert_eq!(s.memory_limit, Some(536_870_912));
        assert_eq!(s.oom_kills, Some(2));
        assert_eq!(s.cpu_periods, Some(12_000));
        assert_eq!(s.cpu_throttled_periods, Some(1_500));
        assert_eq!(s.cpu_throttled_seconds, Some(42.5));
    }

    #[test]
    fn v2_fixture() {
        let c = Cgroup::discover_under(&Path::new(FIXTURES).join("v2"));
        assert_eq!(
            c.locations().memory.as_ref().map(|m| m.0),
            Some(Version::V2)
        );
        let s = c.read();
        // memory.current 209715200 − inactive_file 20971520.
        assert_eq!(s.memory_working_set, Some(188_743_680));
        assert_eq!(s.memory_limit, Some(268_435_456));
        assert_eq!(s.oom_kills, Some(3));
        assert_eq!(s.cpu_periods, Some(800));
        assert_eq!(s.cpu_throttled_periods, Some(200));
        assert_eq!(s.cpu_throttled_seconds, Some(12.25));
    }

    #[test]
    fn nothing_found_reads_nothing() {
        let c = Cgroup::discover_under(Path::new("/nonexistent-root"));
        assert_eq!(c.read(), Sample::default());
    }
}
