//! Who listens on a local port. A local xiu is given ports chosen beforehand (its config names
//! them; it cannot take an inherited socket), so between choosing a port and xiu binding it
//! another process can take it. xiu then logs the bind error and goes on without that listener,
//! and a connect to the port reaches the stranger: viewers would be measured against the wrong
//! server. Before a local xiu counts as started, its ports must be listened on by xiu itself.
//!
//! Linux only (`/proc/net/tcp*` and `/proc/<pid>/fd`); elsewhere nothing is known and a connect
//! is taken as proof, as before. Read by hand rather than with the `procfs` crate: three fields of
//! one kernel-formatted table and one link per descriptor, as `metrics::loader` reads
//! `/proc/<pid>/stat`, do not warrant its dependency tree.

use std::collections::BTreeSet;

/// TCP state `LISTEN` as `/proc/net/tcp` writes it.
const LISTEN: &str = "0A";

/// One listening socket: its local port and socket inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub inode: u64,
}

/// The listening sockets in the text of `/proc/net/tcp` or `/proc/net/tcp6` (header skipped,
/// lines that do not parse ignored: the kernel's format, not user input).
pub fn parse_proc_net_tcp(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != LISTEN {
                return None;
            }
            let port = local.rsplit(':').next()?;
            Some(Listener {
                port: u16::from_str_radix(port, 16).ok()?,
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

/// The inode of a `/proc/<pid>/fd/N` link target such as `socket:[12345]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Who listens on `port`, given every listener and the socket inodes process `pid` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Nobody,
    TheProcess,
    SomeoneElse,
}

pub fn holder(port: u16, listeners: &[Listener], owned: &BTreeSet<u64>) -> Holder {
    let mut on_port = listeners.iter().filter(|l| l.port == port).peekable();
    if on_port.peek().is_none() {
        return Holder::Nobody;
    }
    if on_port.any(|l| owned.contains(&l.inode)) {
        Holder::TheProcess
    } else {
        Holder::SomeoneElse
    }
}

/// What the system says about `ports` and process `pid`; `None` where `/proc` cannot be read
/// (not Linux, or a restricted `/proc`): then nothing is known.
pub fn holders(pid: u32, ports: &[u16]) -> Option<Vec<Holder>> {
    let mut listeners = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            listeners.extend(parse_proc_net_tcp(&text));
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let owned: BTreeSet<u64> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| socket_inode(&target.to_string_lossy()))
        .collect();
    Some(
        ports
            .iter()
            .map(|p| holder(*p, &listeners, &owned))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1077 1 0000000083c48223 100 0 0 10 0
   1: 0100007F:D708 0100007F:8D89 06 00000000:00000000 03:000004FB 00000000     0        0 0 3 000000006fade190
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000083c48223 100 0 0 10 0
";

    #[test]
    fn only_listening_sockets_are_read_with_their_port_and_inode() {
        assert_eq!(
            parse_proc_net_tcp(TCP),
            [
                Listener {
                    port: 2024,
                    inode: 1077
                },
                Listener {
                    port: 8080,
                    inode: 2222
                }
            ]
        );
        assert!(parse_proc_net_tcp("header\ngarbage line\n").is_empty());
    }

    #[test]
    fn fd_links_name_socket_inodes() {
        assert_eq!(socket_inode("socket:[2222]"), Some(2222));
        assert_eq!(socket_inode("pipe:[2222]"), None);
        assert_eq!(socket_inode("/tmp/xiu.log"), None);
    }

    #[test]
    fn a_port_is_held_by_the_process_only_through_a_socket_it_owns() {
        let listeners = parse_proc_net_tcp(TCP);
        let owned = BTreeSet::from([2222]);
        assert_eq!(holder(8080, &listeners, &owned), Holder::TheProcess);
        assert_eq!(holder(2024, &listeners, &owned), Holder::SomeoneElse);
        assert_eq!(holder(9999, &listeners, &owned), Holder::Nobody);
    }

    #[test]
    fn this_process_is_seen_holding_its_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let Some(h) = holders(std::process::id(), &[port]) else {
            return; // no /proc here: nothing to check
        };
        assert_eq!(h, [Holder::TheProcess]);
        drop(l);
        assert_eq!(
            holders(std::process::id(), &[port]).unwrap(),
            [Holder::Nobody]
        );
    }
}
