//! The scenario loader (`xiuload::scenario::parse`, what `scenario::load` runs on a file's text)
//! and what `xiuload validate` then does with a valid scenario (the xiu name-collision notes).
//!
//! Besides not panicking: every error names a line and column (1-based, within the text) and
//! renders; a valid scenario's notes render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use xiuload::scenario::{LoadError, advice, parse};

fuzz_target!(|data: &[u8]| {
    // `load` reads the file with `read_to_string`: text that is not UTF-8 never gets further.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match parse(path, text) {
        Ok(scenario) => {
            for note in advice::name_collisions(&scenario) {
                let _ = note.to_string();
            }
        }
        Err(LoadError::Invalid(problems)) => {
            assert!(
                !problems.is_empty(),
                "an invalid scenario with no problem named"
            );
            let lines = text.matches('\n').count() + 1;
            for p in &problems {
                assert!(
                    (1..=lines).contains(&p.line) && p.column >= 1,
                    "{}:{} is outside the text",
                    p.line,
                    p.column
                );
                let _ = p.to_string();
            }
        }
        Err(e @ (LoadError::Read { .. } | LoadError::TooLarge { .. })) => {
            panic!("parse reads no file: {e}")
        }
    }
});
