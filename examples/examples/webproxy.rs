//! gevent's `webproxy.py`: an HTTP proxy whose handler fetches the page it is asked for with
//! `gevent::http::Client` and streams it back, while other greenlets serve other requests.
//!
//! ```sh
//! cargo run -p gevent-examples --example webproxy             # listens on 127.0.0.1:8089
//! cargo run -p gevent-examples --example webproxy -- 0        # any free port
//! ```
//!
//! Then, from another terminal, either as a proxy (`curl -x` sends the absolute URL,
//! `GET http://host/path`) or, as gevent's example does, with the URL in the path:
//!
//! ```sh
//! curl -x http://127.0.0.1:8089 http://127.0.0.1:8088/
//! curl http://127.0.0.1:8089/http://127.0.0.1:8088/
//! ```
//!
//! Only `GET` and `HEAD` are forwarded (`CONNECT`, and so `https` through `curl -x`, is not
//! supported; `/https://...` in the path is). A URL that cannot be fetched (malformed,
//! unresolvable, refused, timed out) is answered `502 Bad Gateway` with the reason.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Duration;

use gevent::http::{
    Body, Client, HeaderMap, HeaderValue, Method, Request, RequestBody, Response, Server,
    StatusCode, Uri, header,
};
use gevent::net::TcpListener;

fn main() -> ExitCode {
    let port: u16 = match std::env::args().nth(1).map(|port| port.parse()) {
        None => 8089,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: webproxy [PORT]   (PORT defaults to 8089)");
            return ExitCode::FAILURE;
        }
    };
    gevent::run(|| {
        let listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        // One client for all requests: its keep-alive connections are shared by them.
        let client = Client::builder().connect_timeout(Duration::from_secs(10)).build();
        let server = Server::new(listener, move |request| proxy(&client, &request));
        match server.local_addr() {
            Ok(addr) => println!("Proxying on http://{addr}"),
            Err(e) => {
                eprintln!("the listener has no address: {e}");
                return ExitCode::FAILURE;
            }
        }
        match server.serve_forever() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("the server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn proxy(client: &Client, request: &Request<RequestBody<'_>>) -> Response<Body> {
    let target = match target(request.uri()) {
        Ok(Some(target)) => target,
        Ok(None) => return text(StatusCode::OK, USAGE.into()),
        Err(reason) => return text(StatusCode::BAD_GATEWAY, reason),
    };
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let reason = format!("this proxy forwards GET and HEAD, not {method}\n");
        return text(StatusCode::METHOD_NOT_ALLOWED, reason);
    }
    let mut upstream = Request::new(Body::empty());
    *upstream.method_mut() = method.clone();
    *upstream.uri_mut() = target.clone();
    // The client writes the target's own Host.
    *upstream.headers_mut() = end_to_end(request.headers());
    upstream.headers_mut().remove(header::HOST);
    let response = match client.send(upstream) {
        Ok(response) => response,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("cannot fetch {target}: {e}\n")),
    };
    println!("{method} {target} -> {}", response.status().as_u16());
    let (mut parts, body) = response.into_parts();
    let length =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|len| len.to_str().ok()?.parse().ok());
    parts.headers = end_to_end(&parts.headers);
    // Streamed as it arrives: with its length if the target gave one, chunked otherwise.
    let body = match length {
        Some(len) => Body::sized_reader(body, len),
        None => Body::from_reader(body),
    };
    Response::from_parts(parts, body)
}

const USAGE: &str = "This is a web proxy: `curl -x http://THIS_HOST:PORT http://example.com/`, \
                     or browse to http://THIS_HOST:PORT/http://example.com/\n";

/// The URL a request asks for: its absolute-form target (`GET http://host/path`, as sent to
/// a proxy), or an absolute URL in its path (`GET /http://host/path`); `None` for `/`.
fn target(uri: &Uri) -> Result<Option<Uri>, String> {
    if uri.scheme().is_some() {
        return Ok(Some(uri.clone()));
    }
    let asked = uri.path_and_query().map_or("/", |path| path.as_str());
    if asked == "/" {
        return Ok(None);
    }
    let url = &asked[1..];
    match url.parse::<Uri>() {
        Ok(url) if url.scheme().is_some() && url.host().is_some() => Ok(Some(url)),
        _ => Err(format!("not a URL to fetch: {url:?}\n")),
    }
}

/// The headers of `headers` meant for the other end, without those of this one connection
/// (RFC 9110 §7.6.1) and without the framing, which the server and client write themselves.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    let named_by_connection: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut kept = HeaderMap::new();
    for (name, value) in headers {
        let name_str = name.as_str();
        if !HOP_BY_HOP.contains(&name_str) && !named_by_connection.iter().any(|n| n == name_str) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

fn text(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
