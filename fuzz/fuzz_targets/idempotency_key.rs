//! The `Idempotency-Key` format: 1–128 visible ASCII characters, compared byte for byte. The
//! parser must accept exactly those and hand back the key unchanged.
#![no_main]

use counter_origin::counter::idempotency::{parse, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let valid =
        (1..=MAX_KEY_LEN).contains(&data.len()) && data.iter().all(|b| (0x21..=0x7e).contains(b));
    match parse(data) {
        Ok(key) => {
            assert!(valid, "accepted {data:?}");
            assert_eq!(
                key.into_inner().as_bytes(),
                data,
                "the key is stored as sent"
            );
        }
        Err(_) => assert!(!valid, "refused a valid key {data:?}"),
    }
});
