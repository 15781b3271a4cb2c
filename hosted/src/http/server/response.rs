//! Response heads, written into the connection's output buffer, and the cached `Date` line.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};

use crate::http::codec::{connection_tokens, decimal};

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body may follow (1xx, 204, 304).
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    UntilClose,
}

/// Whether a status forbids a body (RFC 9110 §6.4.1).
pub(super) fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Appends a response head to `out`. `Content-Length`, `Transfer-Encoding` and `Connection`
/// come from `framing` and `keep_alive`, not from `headers` (but a `Connection: close` there
/// closes the connection); `Date` is added unless set. Returns whether the connection stays
/// open.
pub(super) fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    keep_alive: bool,
    client: Version,
) -> bool {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut keep_alive = keep_alive;
    let mut has_date = false;
    for (name, value) in headers {
        has_date |= name == DATE;
        if name == CONNECTION {
            keep_alive &= !connection_tokens(value.as_bytes()).0;
            continue;
        }
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            // The user's Content-Length of a 304 describes the resource, not this message.
            if !(name == CONTENT_LENGTH && framing == Framing::None) {
                continue;
            }
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::None | Framing::UntilClose => {}
        Framing::Length(len) => {
            out.extend_from_slice(b"content-length: ");
            let mut digits = [0u8; 20];
            out.extend_from_slice(decimal(len, &mut digits));
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if client == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !has_date {
        with_date_line(|line| out.extend_from_slice(line));
    }
    out.extend_from_slice(b"\r\n");
    keep_alive
}

/// Appends a short plain-text error response that closes the connection.
pub(super) fn write_error(out: &mut Vec<u8>, status: StatusCode, client: Version) {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    write_head(out, status, &headers, Framing::Length(reason.len() as u64 + 1), false, client);
    out.extend_from_slice(reason.as_bytes());
    out.push(b'\n');
}

/// `date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`
const DATE_LINE_LEN: usize = 37;

thread_local! {
    /// The date line of the current second: formatted once a second, not per response.
    static DATE_LINE: Cell<(u64, [u8; DATE_LINE_LEN])> = const { Cell::new((u64::MAX, [0; DATE_LINE_LEN])) };
}

fn with_date_line(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (second, mut line) = DATE_LINE.get();
    if second != now {
        format_date_line(now, &mut line);
        DATE_LINE.set((now, line));
    }
    f(&line);
}

/// Formats the IMF-fixdate of `secs` since the epoch (RFC 9110 §5.6.7) as a header line.
fn format_date_line(secs: u64, line: &mut [u8; DATE_LINE_LEN]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        line[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"date: ");
    put(DAYS[(days % 7) as usize]);
    put(b", ");
    put(&two(day));
    put(b" ");
    put(MONTHS[(month - 1) as usize]);
    put(b" ");
    put(&two(year / 100));
    put(&two(year));
    put(b" ");
    put(&two(in_day / 3600));
    put(b":");
    put(&two(in_day / 60 % 60));
    put(b":");
    put(&two(in_day % 60));
    put(b" GMT\r\n");
}

/// Year, month (1..=12) and day (1..=31) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(secs: u64) -> String {
        let mut line = [0; DATE_LINE_LEN];
        format_date_line(secs, &mut line);
        String::from_utf8(line.to_vec()).unwrap()
    }

    #[test]
    fn formats_imf_fixdates() {
        assert_eq!(date(784_111_777), "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
        assert_eq!(date(0), "date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
        assert_eq!(date(951_782_400), "date: Tue, 29 Feb 2000 00:00:00 GMT\r\n");
        assert_eq!(date(4_102_444_799), "date: Thu, 31 Dec 2099 23:59:59 GMT\r\n");
    }

    #[test]
    fn writes_framing_and_connection_from_the_server_not_the_user() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", "1".parse().unwrap());
        headers.insert(CONTENT_LENGTH, "999".parse().unwrap());
        headers.insert(CONNECTION, "upgrade".parse().unwrap());
        headers.insert(DATE, "then".parse().unwrap());
        let mut out = Vec::new();
        write_head(&mut out, StatusCode::OK, &headers, Framing::Length(5), true, Version::HTTP_10);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: then\r\ncontent-length: 5\r\n\
             connection: keep-alive\r\n\r\n"
        );
        let mut out = Vec::new();
        write_head(
            &mut out,
            StatusCode::OK,
            &HeaderMap::new(),
            Framing::Chunked,
            false,
            Version::HTTP_11,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\ndate: "
        ));
    }

    #[test]
    fn a_users_connection_close_closes_the_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, "Keep-Alive, Close".parse().unwrap());
        let mut out = Vec::new();
        let open = write_head(
            &mut out,
            StatusCode::OK,
            &headers,
            Framing::Length(0),
            true,
            Version::HTTP_11,
        );
        assert!(!open);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert_eq!(text.matches("connection").count(), 1, "{text}");
        let mut out = Vec::new();
        assert!(write_head(
            &mut out,
            StatusCode::OK,
            &HeaderMap::new(),
            Framing::Length(0),
            true,
            Version::HTTP_11
        ));
    }
}
