//! `OsPoller` on macOS and the BSDs: kqueue (written by the kqueue task; placeholder).
compile_error!("the kqueue backend is not written yet");
