//! Arbitrary bytes into the decoder, with the default and the smallest
//! frame limit. Decoding must never panic; every frame it yields must
//! consume exactly its own bytes, re-encode to those same bytes, and
//! decode again to the same frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_core::frame::{decode, Limits, FRAME_BYTES_MAX_FLOOR};

fuzz_target!(|data: &[u8]| {
    for limits in [
        Limits::default(),
        Limits::with_frame_bytes_max(FRAME_BYTES_MAX_FLOOR),
    ] {
        check(data, &limits);
    }
});

fn check(data: &[u8], limits: &Limits) {
    let mut buf = BytesMut::from(data);
    let mut offset = 0;
    loop {
        let before = buf.len();
        match decode(&mut buf, limits) {
            Ok(Some(frame)) => {
                let consumed = before - buf.len();
                assert!(consumed >= 6, "a frame is at least its header");
                let original = &data[offset..offset + consumed];
                offset += consumed;

                let mut again = BytesMut::new();
                let n = frame
                    .encode(&mut again, limits)
                    .expect("a decoded frame re-encodes");
                assert_eq!(n, consumed, "re-encoded length differs");
                assert_eq!(&again[..], original, "encoding is not canonical");

                let redecoded = decode(&mut again, limits)
                    .expect("re-encoded frame decodes")
                    .expect("re-encoded frame is whole");
                assert_eq!(redecoded, frame);
                assert!(again.is_empty());
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                assert_eq!(&buf[..], &data[offset..], "Ok(None) changed bytes");
                return;
            }
            Err(_) => return,
        }
    }
}
