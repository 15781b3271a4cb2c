use std::io::{BufReader, Cursor, ErrorKind, Read, Write};

use super::{BodyReader, ChunkedDecoder, ChunkedEncoder};

fn decode(wire: &[u8]) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut decoder = ChunkedDecoder::new(Cursor::new(wire));
    let mut data = Vec::new();
    decoder.read_to_end(&mut data)?;
    assert!(decoder.is_done());
    let mut cursor = decoder.into_inner();
    let mut rest = Vec::new();
    cursor.read_to_end(&mut rest)?;
    Ok((data, rest))
}

#[test]
fn decodes_chunks_extensions_and_trailers_and_stops_at_the_next_message() {
    let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n6 \r\nworld!\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n";
    let (data, rest) = decode(wire).unwrap();
    assert_eq!(data, b"hello world!");
    assert_eq!(rest, b"GET / HTTP/1.1\r\n");
}

#[test]
fn accepts_bare_lf_and_upper_case_hex() {
    let (data, rest) = decode(b"A\n0123456789\n0\n\n").unwrap();
    assert_eq!(data, b"0123456789");
    assert!(rest.is_empty());
}

#[test]
fn refuses_malformed_chunked_bodies() {
    for (wire, kind) in [
        (&b"zz\r\nhello\r\n0\r\n\r\n"[..], ErrorKind::InvalidData),
        (b"\r\n", ErrorKind::InvalidData),
        (b"3\r\nhello\r\n0\r\n\r\n", ErrorKind::InvalidData),
        (b"ffffffffffffffffff\r\n", ErrorKind::InvalidData),
        (b"5\r\nhel", ErrorKind::UnexpectedEof),
        (b"5\r\nhello\r\n", ErrorKind::UnexpectedEof),
        (b"-1\r\n", ErrorKind::InvalidData),
    ] {
        let err = decode(wire).unwrap_err();
        assert_eq!(err.kind(), kind, "{:?}: {err}", String::from_utf8_lossy(wire));
    }
}

#[test]
fn refuses_an_endless_size_line_and_trailer_section() {
    let mut wire = b"1".to_vec();
    wire.extend(std::iter::repeat_n(b';', super::MAX_CHUNK_LINE + 1));
    assert_eq!(decode(&wire).unwrap_err().kind(), ErrorKind::InvalidData);

    let mut wire = b"0\r\n".to_vec();
    for _ in 0..super::MAX_TRAILERS / 8 {
        wire.extend_from_slice(b"X: 1234\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    assert_eq!(decode(&wire).unwrap_err().kind(), ErrorKind::InvalidData);
}

#[test]
fn a_failed_decoder_stays_failed() {
    let mut decoder = ChunkedDecoder::new(Cursor::new(&b"x\r\n5\r\nhello\r\n0\r\n\r\n"[..]));
    let mut buf = [0u8; 16];
    assert!(decoder.read(&mut buf).is_err());
    assert!(decoder.read(&mut buf).is_err());
}

#[test]
fn encoder_output_decodes_to_the_input_through_a_small_buffer() {
    let mut wire = Vec::new();
    let mut encoder = ChunkedEncoder::new(&mut wire);
    for piece in [&b"a"[..], b"", &[7u8; 300], b"end"] {
        encoder.write_all(piece).unwrap();
    }
    encoder.finish().unwrap();
    assert!(wire.starts_with(b"1\r\na\r\n12c\r\n"));
    // A 3-byte buffer makes every line cross refills.
    let mut decoder = ChunkedDecoder::new(BufReader::with_capacity(3, Cursor::new(wire)));
    let mut data = Vec::new();
    decoder.read_to_end(&mut data).unwrap();
    let mut expected = b"a".to_vec();
    expected.extend_from_slice(&[7u8; 300]);
    expected.extend_from_slice(b"end");
    assert_eq!(data, expected);
}

#[test]
fn length_framing_stops_at_the_length_and_reports_an_early_close() {
    let mut body = BodyReader::with_length(Cursor::new(&b"hello worldGET"[..]), 11);
    let mut data = String::new();
    body.read_to_string(&mut data).unwrap();
    assert_eq!(data, "hello world");
    assert!(body.is_done());
    assert_eq!(body.into_inner().position(), 11);

    let mut body = BodyReader::with_length(Cursor::new(&b"short"[..]), 11);
    assert_eq!(body.read_to_end(&mut Vec::new()).unwrap_err().kind(), ErrorKind::UnexpectedEof);
}

/// Reads through `reader` with reads of the sizes in `reads`, cycled (each at least 1 byte).
fn read_in_steps(reader: &mut impl Read, reads: &[usize]) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 64];
    for &want in reads.iter().cycle() {
        match reader.read(&mut buf[..want.clamp(1, 64)])? {
            0 => return Ok(data),
            n => data.extend_from_slice(&buf[..n]),
        }
    }
    unreachable!("the sizes to read are cycled forever")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever the writes, the buffer under the decoder and the reads, the encoder's output
    /// decodes to what was written and leaves the reader at the next message.
    #[test]
    fn chunked_round_trip_through_random_buffers(
        writes in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..100), 0..8),
        capacity in 1usize..40,
        reads in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = Vec::new();
        let mut encoder = ChunkedEncoder::new(&mut wire);
        for write in &writes {
            encoder.write_all(write).unwrap();
        }
        encoder.finish().unwrap();
        wire.extend_from_slice(b"GET /next HTTP/1.1\r\n");

        let mut decoder = ChunkedDecoder::new(BufReader::with_capacity(capacity, Cursor::new(wire)));
        let data = read_in_steps(&mut decoder, &reads).unwrap();
        proptest::prop_assert_eq!(data, writes.concat());
        proptest::prop_assert!(decoder.is_done());
        let mut rest = Vec::new();
        decoder.into_inner().read_to_end(&mut rest).unwrap();
        proptest::prop_assert_eq!(rest, b"GET /next HTTP/1.1\r\n".to_vec());
    }
}

#[test]
fn a_trailer_line_ending_in_a_bare_lf_at_the_limit_is_refused_not_a_panic() {
    // A bare LF counts one byte on the wire, while the decoder counted two for each trailer
    // line: a line filling the limit left the remaining budget below zero.
    let mut wire = b"0\r\n".to_vec();
    wire.extend(std::iter::repeat_n(b'x', super::MAX_TRAILERS - 1));
    wire.extend_from_slice(b"\nX: 1\r\n\r\n");
    let err = decode(&wire).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
}

#[test]
fn lengths_are_plain_decimal_up_to_u64_max() {
    use super::{decimal, parse_length};
    assert_eq!(parse_length(b"0"), Some(0));
    assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
    for bad in [&b""[..], b"18446744073709551616", b"+5", b"-1", b"5 ", b"0x10", b"1_0"] {
        assert_eq!(parse_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
    for n in [0, 7, 10, 12_345, u64::MAX] {
        assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
    }
}
