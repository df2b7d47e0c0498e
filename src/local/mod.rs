//! A xiu topology on loopback, started and stopped by xiuload itself: the quick start and the
//! integration tests need no cluster.

pub mod balancer;
pub mod config;
mod edge_supervisor;
pub mod kubelet;
mod kubelet_record;
pub mod listeners;
pub mod probes;
mod process_action;
pub mod rotation;
pub mod topology;
pub mod xiu;

pub use balancer::{LocalBalancer, find_haproxy};
pub use config::{XiuPorts, render_config};
pub use kubelet::{Kubelet, KubeletEvent, KubeletLog};
pub use rotation::Rotation;
pub use topology::{LocalTopology, TopologyOptions};
pub use xiu::{
    LocalError, LocalXiu, die_with_parent, find_xiu_binary, kill_all_now, sweep_stale_dirs,
};
