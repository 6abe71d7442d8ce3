//! The configuration loader, `Config::load` on any TOML text (with an empty environment).
//!
//! Beyond not panicking: a configuration that loads prints (`--print-config`) as TOML that
//! loads again to the same configuration.
#![no_main]

use herald::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let config = match Config::load(Some(text), &|_| None) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let printed = config.to_toml();
    assert!(!printed.is_empty(), "a loaded configuration does not print");
    let again = Config::load(Some(&printed), &|_| None)
        .unwrap_or_else(|e| panic!("the printed configuration does not load: {e}\n{printed}"));
    assert_eq!(again.to_toml(), printed);
});
