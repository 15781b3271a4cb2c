//! The `tracing` feature: a greenlet runs inside the span current where it was spawned.
#![cfg(feature = "tracing")]

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use gevent::{joinall, spawn, yield_now};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

thread_local! {
    /// (target, level, message) of each event of this thread (each test runs on its own).
    static EVENTS: RefCell<Vec<(String, Level, String)>> = const { RefCell::new(Vec::new()) };
}

/// Records events; the registry under it keeps the stack of entered spans.
struct Events;

impl<S: Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let meta = event.metadata();
        let entry = (meta.target().to_owned(), *meta.level(), message.0);
        EVENTS.with_borrow_mut(|events| events.push(entry));
    }
}

fn subscriber() -> impl Subscriber {
    tracing_subscriber::registry().with(Events)
}

/// The name of the span current now, as the code running now sees it.
fn current_span_name() -> Option<&'static str> {
    tracing::Span::current().metadata().map(|m| m.name())
}

#[test]
fn each_greenlet_runs_in_the_span_current_where_it_was_spawned_and_only_in_it() {
    tracing::subscriber::with_default(subscriber(), || {
        gevent::run(|| {
            let seen = Rc::new(RefCell::new(Vec::new()));
            let worker = |who: &'static str| {
                let seen = seen.clone();
                move || {
                    for _ in 0..3 {
                        seen.borrow_mut().push((who, current_span_name()));
                        yield_now().unwrap();
                    }
                }
            };
            let a = tracing::info_span!("span-a").in_scope(|| spawn(worker("a")));
            let b = tracing::info_span!("span-b").in_scope(|| spawn(worker("b")));
            let plain = spawn(worker("plain"));
            assert_eq!(current_span_name(), None);
            joinall([&a, &b, &plain]).unwrap();
            assert_eq!(current_span_name(), None, "the main greenlet is back outside any span");
            let seen = seen.borrow();
            // They interleaved: each ran in turn, three times.
            let order: Vec<_> = seen.iter().map(|(who, _)| *who).collect();
            assert_eq!(order, ["a", "b", "plain"].repeat(3));
            for (who, span) in seen.iter() {
                let expected = match *who {
                    "a" => Some("span-a"),
                    "b" => Some("span-b"),
                    _ => None,
                };
                assert_eq!(*span, expected, "greenlet {who}");
            }
        });
    });
}

#[test]
fn spawns_and_ends_are_tracing_events() {
    tracing::subscriber::with_default(subscriber(), || {
        gevent::run(|| spawn(|| ()).join().unwrap());
    });
    EVENTS.with_borrow(|events| {
        let ours: Vec<_> = events
            .iter()
            .filter(|(target, ..)| target == "gevent")
            .map(|(_, level, message)| (*level, message.as_str()))
            .collect();
        assert_eq!(ours, [(Level::TRACE, "greenlet spawned"), (Level::DEBUG, "greenlet finished")]);
    });
}
