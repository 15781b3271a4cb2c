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

thread_local! {
    /// What each blocking call made by [`Blocking`] returned, by the event's message.
    static BLOCKED: RefCell<Vec<(String, Result<(), gevent::Interrupted>)>> =
        const { RefCell::new(Vec::new()) };
}

/// A layer that makes a blocking call from inside gevent's own events and span switches.
struct Blocking;

impl<S: Subscriber> Layer<S> for Blocking {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "gevent" {
            let result = gevent::sleep(std::time::Duration::ZERO);
            BLOCKED.with_borrow_mut(|b| b.push((event.metadata().name().to_owned(), result)));
        }
    }

    fn on_enter(&self, _: &tracing::span::Id, _: Context<'_, S>) {
        let result = gevent::sleep(std::time::Duration::ZERO);
        BLOCKED.with_borrow_mut(|b| b.push((String::from("enter"), result)));
    }
}

#[test]
fn a_subscriber_that_blocks_inside_the_hub_is_refused_and_the_greenlets_run_on() {
    let subscriber = tracing_subscriber::registry().with(Blocking);
    tracing::subscriber::with_default(subscriber, || {
        let got = gevent::run(|| {
            let g = tracing::info_span!("span").in_scope(|| {
                spawn(|| {
                    yield_now().unwrap();
                    7
                })
            });
            g.get()
        });
        assert_eq!(got.ok(), Some(7));
    });
    BLOCKED.with_borrow(|blocked| {
        let refused = |r: &Result<(), gevent::Interrupted>| {
            matches!(r, Err(gevent::Interrupted::Deadlock(_)))
        };
        let (enters, events): (Vec<_>, Vec<_>) =
            blocked.iter().partition(|(what, _)| what == "enter");
        // The spawn and the end, from inside the hub: refused.
        assert_eq!(events.len(), 2, "{blocked:?}");
        assert!(events.iter().all(|(_, r)| refused(r)), "{blocked:?}");
        // The main greenlet's own `in_scope` entry is outside the hub and may block; the
        // entries of the greenlet's resumes (two: it yields once) are the hub's.
        assert_eq!(enters.iter().filter(|(_, r)| r.is_ok()).count(), 1, "{blocked:?}");
        assert_eq!(enters.iter().filter(|(_, r)| refused(r)).count(), 2, "{blocked:?}");
    });
}
