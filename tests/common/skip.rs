//! `skip_note!`: prints a skipped test's reason straight to stderr. The test harness
//! captures `eprintln!` output of passing tests, so a skip printed that way would be
//! invisible; a direct write is not captured.
#![allow(unused_macros)]

macro_rules! skip_note {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
