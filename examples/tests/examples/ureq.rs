//! `ureq_client`: ureq's blocking client on gevent's sockets through a custom connector and
//! resolver. Overlap is shown by counts, not by times: the example's server holds its answers
//! until all ten requests have arrived (for at most seconds), so ten requests in flight at once
//! means no client blocked the thread while it waited; with ureq's own std sockets the first
//! request blocks the hub's thread, the server never reads it, and the example fails.

use super::common::{example, ok, output};

#[test]
fn ureq_client_overlaps_ten_requests_on_one_thread() {
    let stdout = ok(output(&mut example("ureq_client")));
    for i in 0..10 {
        let want = format!("client {i}: 200 \"hello from a greenlet\"\n");
        assert!(stdout.contains(&want), "no {want:?} in {stdout}");
    }
    assert!(stdout.contains("most requests in flight at once: 10\n"), "{stdout}");
    // The ticker's next wake is at most one tick away when the first request arrives, and the
    // server answers only after a delay of ten ticks: timers run in deadline order, so the
    // ticker runs at least once while requests are pending unless something blocked the hub.
    let ticks = stdout
        .lines()
        .find_map(|line| line.strip_prefix("ticks while requests were pending: "))
        .and_then(|count| count.parse::<usize>().ok());
    assert!(ticks.is_some_and(|ticks| ticks > 0), "{stdout}");
}
