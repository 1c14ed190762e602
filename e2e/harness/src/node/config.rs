//! The real node's configuration files, as text: containerd's `config.toml`, the CNI
//! network, the kubelet's `KubeletConfiguration`. Pure: paths and addresses in, text out.

use std::net::Ipv4Addr;
use std::path::Path;

/// Where and how the node runs; everything the files need.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    /// The node's state directory (containerd's root and state, the kubelet's root).
    pub root: &'a Path,
    /// The cgroup (in every v1 hierarchy) the kubelet puts the pods under.
    pub cgroup: &'a str,
    /// The node's address (on the loopback device of its network namespace).
    pub node_ip: Ipv4Addr,
    /// The pods' subnet (a /24 on the node's bridge).
    pub pod_subnet: &'a str,
    /// The sandbox (pause) image.
    pub pause_image: &'a str,
    /// The CA that signs the API server's client certificates.
    pub ca_cert: &'a Path,
}

impl Layout<'_> {
    /// containerd's gRPC socket.
    #[must_use]
    pub fn containerd_socket(&self) -> std::path::PathBuf {
        self.root.join("containerd/containerd.sock")
    }

    /// containerd 1.6 (Debian 12), CRI plugin on.
    ///
    /// * `restrict_oom_score_adj`: runc cannot set a negative `oom_score_adj` here (root
    ///   lacks `CAP_SYS_RESOURCE`); without it every sandbox fails with "can't get final
    ///   child's PID from pipe: EOF".
    /// * cgroupfs (`SystemdCgroup = false`): there is no systemd.
    /// * the plugins that would write outside the root (`opt` → `/opt/containerd`) and the
    ///   snapshotters that are not used are disabled.
    #[must_use]
    pub fn containerd_toml(&self) -> String {
        let root = self.root.display();
        format!(
            r#"version = 2
root = "{root}/containerd/root"
state = "{root}/containerd/state"
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root}/cni/net.d"
"#,
            socket = self.containerd_socket().display(),
            pause = self.pause_image,
        )
    }

    /// The pods' network: a bridge with the node as gateway, addresses from host-local
    /// (its allocations under the root). No masquerading: nothing leaves the namespace.
    #[must_use]
    pub fn cni_conflist(&self) -> String {
        serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "pacer-e2e",
            "plugins": [{
                "type": "bridge",
                "bridge": "pacer0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": self.pod_subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": self.root.join("cni/ipam"),
                },
            }],
        })
        .to_string()
    }

    /// The kubelet's configuration file.
    ///
    /// * cgroup v1 (`failCgroupV1: false`), cgroupfs, pods under our own cgroup.
    /// * no iptables chains (no kube-proxy; the Service address is the node's own).
    /// * image garbage collection off (100 %): the images were imported, nothing can pull
    ///   them again.
    /// * only the API server's client certificate (signed by our CA) is accepted, and it
    ///   may do anything (`kubectl logs`).
    /// * `syncFrequency` and the ConfigMap change detection stay at their defaults: the
    ///   scenarios measure the ConfigMap delivery delay a user meets.
    #[must_use]
    pub fn kubelet_yaml(&self) -> String {
        let root = self.root.display();
        format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://{socket}
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup}
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: {ca}
authorization:
  mode: AlwaysAllow
volumePluginDir: {root}/kubelet/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
serializeImagePulls: false
"#,
            ip = self.node_ip,
            socket = self.containerd_socket().display(),
            cgroup = self.cgroup,
            ca = self.ca_cert.display(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout<'static> {
        Layout {
            root: Path::new("/var/lib/node"),
            cgroup: "node-cg",
            node_ip: Ipv4Addr::new(172, 31, 0, 1),
            pod_subnet: "10.88.0.0/24",
            pause_image: "localhost/pause:x",
            ca_cert: Path::new("/var/lib/node/pki/ca.crt"),
        }
    }

    #[test]
    fn containerd_keeps_everything_under_the_root() {
        let text = layout().containerd_toml();
        assert!(text.contains(r#"root = "/var/lib/node/containerd/root""#));
        assert!(text.contains(r#"address = "/var/lib/node/containerd/containerd.sock""#));
        assert!(text.contains("restrict_oom_score_adj = true"));
        assert!(text.contains(r#"sandbox_image = "localhost/pause:x""#));
        assert!(text.contains("SystemdCgroup = false"));
    }

    #[test]
    fn cni_allocates_from_the_pod_subnet_under_the_root() {
        let v: serde_json::Value = serde_json::from_str(&layout().cni_conflist()).unwrap();
        let ipam = &v["plugins"][0]["ipam"];
        assert_eq!(ipam["ranges"][0][0]["subnet"], "10.88.0.0/24");
        assert_eq!(ipam["dataDir"], "/var/lib/node/cni/ipam");
        assert_eq!(v["plugins"][0]["ipMasq"], false);
    }

    #[test]
    fn kubelet_uses_our_cgroup_and_socket() {
        let text = layout().kubelet_yaml();
        assert!(text.contains("cgroupRoot: /node-cg\n"));
        assert!(text.contains(
            "containerRuntimeEndpoint: unix:///var/lib/node/containerd/containerd.sock\n"
        ));
        assert!(text.contains("address: 172.31.0.1\n"));
        assert!(text.contains("failCgroupV1: false\n"));
    }
}
