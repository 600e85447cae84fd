//! A `NetworkHealthPolicy` document (YAML or JSON), as `node-fixer scan --policy FILE` and the
//! operator read it: parsing and validation (CEL rules, selector, globs) never panic, and a
//! policy that was accepted is accepted again after a round trip through YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netheal_crds::load::parse_policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = parse_policy(text) {
        let again = serde_yaml::to_string(&policy).expect("an accepted policy serialises");
        if let Err(err) = parse_policy(&again) {
            panic!("accepted, then refused after a round trip: {err}\n{again}");
        }
    }
});
