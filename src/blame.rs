//! Whose side a command's failure is on. Library errors say it; `main.rs` alone turns it (and a
//! verdict) into a process exit code (`exit`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The user's input: a scenario, a flag, a run directory that is not one.
    Input,
    /// Something at run time outside the input: a full disk, a server or cluster that failed.
    Runtime,
}
