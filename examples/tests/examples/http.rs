//! The HTTP examples against a real client, `curl`, run as processes: `http_server` (hello
//! world, files, a streamed response), `webproxy` in front of it, and `concurrent_download`,
//! whose overlap is shown by a count, not by times.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::common::{example, ok, output};
use super::net::{Server, start_server};

/// A directory of its own for a test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("gevent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `http_server` on a free port serving `dir`; returns it with its base URL.
fn http_server(dir: &Path) -> (Server, String) {
    let mut command = example("http_server");
    command.arg("0").arg(dir);
    let (server, first) = start_server(command);
    let base = first.trim().strip_prefix("Serving on ").expect("the address line").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");
    (server, base)
}

/// Runs curl with `args` (it gives up after 20 s); its output, whatever its status.
fn curl(args: &[&str]) -> Output {
    output(Command::new("curl").args(["-sS", "--max-time", "20"]).args(args))
}

/// curl's output for `args`, which must succeed: (stdout, stderr).
fn curl_ok(args: &[&str]) -> (Vec<u8>, String) {
    let out = curl(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl {args:?}: {}: {stderr}", out.status);
    (out.stdout, stderr)
}

/// The status code that curl got for `args`.
fn status_of(args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    String::from_utf8(curl_ok(&all).0).unwrap()
}

#[test]
fn http_server_serves_hello_files_and_a_stream_to_curl() {
    let dir = TempDir::new("http-server-example");
    let public = dir.0.join("public");
    std::fs::create_dir(&public).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(public.join("data.bin"), &data).unwrap();
    std::fs::write(public.join("note.txt"), "a note\n").unwrap();
    std::fs::write(dir.0.join("secret.txt"), "not served\n").unwrap();
    let (_server, base) = http_server(&public);

    let (hello, stderr) = curl_ok(&["-v", &format!("{base}/")]);
    assert_eq!(hello, b"<b>hello world</b>\n");
    assert!(stderr.to_lowercase().contains("< content-type: text/html"), "{stderr}");

    let (file, stderr) = curl_ok(&["-v", &format!("{base}/files/data.bin")]);
    assert!(file == data, "data.bin came back as {} other bytes", file.len());
    let stderr = stderr.to_lowercase();
    assert!(stderr.contains("< content-length: 300000"), "{stderr}");
    assert!(stderr.contains("< content-type: application/octet-stream"), "{stderr}");
    let (note, stderr) = curl_ok(&["-v", &format!("{base}/files/note.txt")]);
    assert_eq!(note, b"a note\n");
    assert!(stderr.to_lowercase().contains("< content-type: text/plain"), "{stderr}");

    // curl would resolve the `..` itself without --path-as-is.
    let traversal = format!("{base}/files/../secret.txt");
    assert_eq!(status_of(&["--path-as-is", &traversal]), "403");
    assert_eq!(status_of(&[&format!("{base}/files/%2e%2e/secret.txt")]), "404");
    assert_eq!(status_of(&[&format!("{base}/files/missing")]), "404");
    assert_eq!(status_of(&[&format!("{base}/nowhere")]), "404");

    let (stream, stderr) = curl_ok(&["-v", &format!("{base}/stream")]);
    let want: String = (1..=5).map(|i| format!("piece {i} of 5\n")).collect();
    assert_eq!(String::from_utf8(stream).unwrap(), want);
    assert!(stderr.to_lowercase().contains("< transfer-encoding: chunked"), "{stderr}");
}

#[test]
fn webproxy_forwards_curl_to_http_server_and_answers_502_for_what_it_cannot_fetch() {
    let dir = TempDir::new("webproxy-example");
    let (_server, base) = http_server(&dir.0);
    let mut command = example("webproxy");
    command.arg("0");
    let (_proxy, first) = start_server(command);
    let proxy = first.trim().strip_prefix("Proxying on ").expect("the address line").to_owned();

    let (hello, _) = curl_ok(&["-x", &proxy, &format!("{base}/")]);
    assert_eq!(hello, b"<b>hello world</b>\n");
    // gevent's form: the URL in the path. The streamed answer is streamed on, chunked.
    let (stream, stderr) = curl_ok(&["-v", &format!("{proxy}/{base}/stream")]);
    assert!(String::from_utf8(stream).unwrap().ends_with("piece 5 of 5\n"));
    assert!(stderr.to_lowercase().contains("< transfer-encoding: chunked"), "{stderr}");
    assert_eq!(status_of(&["-x", &proxy, &format!("{base}/nowhere")]), "404");

    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let refused = curl(&["-x", &proxy, "-w", "\n%{http_code}", "http://127.0.0.1:1/"]);
    let refused = String::from_utf8(refused.stdout).unwrap();
    assert!(refused.starts_with("cannot fetch http://127.0.0.1:1/"), "{refused}");
    assert!(refused.ends_with("\n502"), "{refused}");
    assert_eq!(status_of(&[&format!("{proxy}/not-a-url")]), "502");
}

#[test]
fn concurrent_download_overlaps_as_many_fetches_as_its_pool_and_cuts_the_slow_one() {
    let stdout = ok(output(&mut example("concurrent_download")));
    for kib in 1..=7 {
        let want = format!("/file/{kib}: 200 OK, {} bytes\n", kib * 1024);
        assert!(stdout.contains(&want), "no {want:?} in {stdout}");
    }
    assert!(stdout.contains("/slow: cut by the 2s timeout\n"), "{stdout}");
    assert!(stdout.contains("fetched 7 of 8 URLs (28672 bytes) in "), "{stdout}");
    assert!(stdout.contains("most requests in flight at once: 3\n"), "{stdout}");
}
