//! HTTP/1.1 on greenlets: a server whose handlers are plain blocking-style functions run in a
//! greenlet per connection (gevent's `pywsgi.WSGIServer` role), and a small client.
//!
//! Messages use the `http` crate's types (`Request`, `Response`, `StatusCode`,
//! `HeaderMap`, ...), re-exported here, so that what users know of them carries over. Request
//! heads are parsed with `httparse`. Outgoing bodies are a [`Body`].

mod body;
mod client;
pub(crate) mod codec;
mod server;

pub use ::http::{
    HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header,
};
pub use body::Body;
pub use client::{Client, ClientBuilder, ResponseBody};
pub use server::{RequestBody, Server, ServerBuilder};
