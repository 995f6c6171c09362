//! Any text through the permission parser, the pattern parser and the glob matcher; what
//! parses has a canonical spelling that parses back to itself.
#![no_main]

use betty_core::permission::{Permission, PermissionPattern, glob_match};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_at(
        text.char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i),
    );
    for t in [text, a, b] {
        if let Ok(p) = Permission::parse(t) {
            let canon = p.canonical();
            let again = Permission::parse(&canon).expect("the canonical spelling parses");
            assert_eq!(again.canonical(), canon);
            let _ = p.covers(&again);
            if let Ok(pat) = PermissionPattern::parse(b) {
                let _ = (pat.matches(&p), pat.overlaps(&p));
            }
        }
    }
    let _ = glob_match(a, b);
});
