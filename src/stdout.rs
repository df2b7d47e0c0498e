//! Writing results to stdout the way Unix tools do: when the reader has gone away
//! (`xiuload hpa-replay ... | head`), the process ends quietly instead of panicking with "failed
//! printing to stdout: Broken pipe", as `println!` does.

use std::io::Write;

/// Writes `text` and a newline to stdout. A closed pipe ends the process with status 0 (as
/// ripgrep and other tools do: the reader asked for no more); other write errors are ignored,
/// because results also go to files.
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// `println!` that survives a closed stdout (see [`line`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}
