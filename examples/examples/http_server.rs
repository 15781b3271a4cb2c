//! gevent's `wsgiserver.py`: an HTTP server whose handler is a plain blocking-style function,
//! run by `gevent::http::Server` in a greenlet per connection.
//!
//! ```sh
//! cargo run -p gevent-examples --example http_server                 # 127.0.0.1:8088
//! cargo run -p gevent-examples --example http_server -- 0 /some/dir  # any free port, your files
//! ```
//!
//! Then, from another terminal:
//!
//! - `curl http://127.0.0.1:8088/`: hello world;
//! - `curl http://127.0.0.1:8088/files/http_server.rs`: a file of the directory served (by
//!   default the examples' own folder), streamed from disk with its `Content-Length`; paths
//!   with `..` are refused;
//! - `curl -N http://127.0.0.1:8088/stream`: a chunked response written piece by piece, the
//!   handler sleeping between pieces while the server goes on serving others;
//! - anything else: 404.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use gevent::http::{Body, HeaderValue, Request, RequestBody, Response, Server, StatusCode, header};
use gevent::net::TcpListener;

/// How many pieces `/stream` sends, and the pause before each after the first.
const STREAM_PIECES: u32 = 5;
const STREAM_PAUSE: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().map(|port| port.parse()) {
        None => 8088,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: http_server [PORT [DIR]]   (PORT defaults to 8088)");
            return ExitCode::FAILURE;
        }
    };
    let root = args
        .next()
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"), PathBuf::from);
    gevent::run(|| {
        let listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let server = Server::new(listener, move |request| {
            let response = route(&request, &root);
            println!("{} {} -> {}", request.method(), request.uri(), response.status().as_u16());
            response
        });
        match server.local_addr() {
            Ok(addr) => println!("Serving on http://{addr}"),
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

fn route(request: &Request<RequestBody<'_>>, root: &Path) -> Response<Body> {
    let path = request.uri().path();
    if path == "/" {
        return with_type(Response::new(Body::from("<b>hello world</b>\n")), "text/html");
    }
    if path == "/stream" {
        let pieces = Pieces { made: 0, pending: io::Cursor::default() };
        return with_type(Response::new(Body::from_reader(pieces)), "text/plain");
    }
    if let Some(relative) = path.strip_prefix("/files/") {
        return serve_file(root, relative);
    }
    status(StatusCode::NOT_FOUND, "Not Found\n")
}

/// A file of `root`, streamed from disk. The path is taken as it is, undecoded: `%2e%2e` is
/// a file name, not a parent directory, and a literal `..` (or `.`, or an empty segment) is
/// refused, so that nothing outside `root` is reachable.
fn serve_file(root: &Path, relative: &str) -> Response<Body> {
    if relative.split('/').any(|segment| matches!(segment, "" | "." | "..")) {
        return status(StatusCode::FORBIDDEN, "Forbidden\n");
    }
    let path = root.join(relative);
    let opened = File::open(&path).and_then(|file| Ok((file.metadata()?, file)));
    match opened {
        Ok((meta, file)) if meta.is_file() => {
            let response = Response::new(Body::sized_reader(file, meta.len()));
            with_type(response, content_type(&path))
        }
        _ => status(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

/// A Content-Type guessed from the file name's extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "rs" | "toml" | "md") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

fn status(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = with_type(Response::new(Body::from(text)), "text/plain");
    *response.status_mut() = status;
    response
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The body of `/stream`: a reader that sleeps before each piece but the first. The sleep
/// parks only this connection's greenlet; the server sends each piece as a chunk of its own.
struct Pieces {
    made: u32,
    /// The rest of the latest piece, for a reader's buffer too small to take it whole.
    pending: io::Cursor<Vec<u8>>,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pending.read(buf)?;
        if n > 0 || buf.is_empty() || self.made == STREAM_PIECES {
            return Ok(n);
        }
        if self.made > 0 {
            gevent::sleep(STREAM_PAUSE)?;
        }
        self.made += 1;
        let piece = format!("piece {} of {STREAM_PIECES}\n", self.made);
        self.pending = io::Cursor::new(piece.into_bytes());
        self.pending.read(buf)
    }
}
