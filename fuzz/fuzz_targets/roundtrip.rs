//! Arbitrary frames into the encoder. If encoding succeeds, decoding gives
//! back the identical frame and consumes every byte; if it fails, the
//! destination buffer is exactly as it was.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_core::frame::{decode, Frame, Limits, FRAME_BYTES_MAX_FLOOR};

#[derive(Debug, Arbitrary)]
struct Input {
    frame: Frame,
    /// Use the smallest frame limit instead of the default.
    small: bool,
    /// Bytes already in the destination buffer.
    prefix: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let limits = if input.small {
        Limits::with_frame_bytes_max(FRAME_BYTES_MAX_FLOOR)
    } else {
        Limits::default()
    };
    let mut buf = BytesMut::from(&input.prefix[..]);
    match input.frame.encode(&mut buf, &limits) {
        Ok(n) => {
            assert_eq!(buf.len(), input.prefix.len() + n);
            assert!(n <= limits.frame_bytes_max as usize);
            let head = buf.split_to(input.prefix.len());
            assert_eq!(&head[..], &input.prefix[..], "encode changed earlier bytes");
            let decoded = decode(&mut buf, &limits)
                .expect("an encoded frame decodes")
                .expect("an encoded frame is whole");
            assert_eq!(decoded, input.frame);
            assert!(buf.is_empty(), "{} bytes left after decode", buf.len());
        }
        Err(_) => {
            assert_eq!(
                &buf[..],
                &input.prefix[..],
                "encode error changed the buffer"
            );
        }
    }
});
