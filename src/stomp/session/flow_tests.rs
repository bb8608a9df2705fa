//! SENDs in flight: the bound that pauses reading, their settlement, and DISCONNECT's drain.

use super::testing::*;
use super::*;

#[test]
fn the_session_wants_no_input_while_its_sends_in_flight_are_at_the_bound() {
    let mut s = connected();
    for i in 0..4 {
        assert!(s.wants_read(&cfg()), "{i} in flight");
        let out = feed(&mut s, send("x", &[]));
        assert!(publishes(&out));
    }
    assert_eq!(s.sends_in_flight(), 4);
    assert!(!s.wants_read(&cfg()), "cfg() allows 4");
    let mut out = Vec::new();
    s.sends_committed(3, &mut out);
    assert!(out.is_empty());
    assert!(s.wants_read(&cfg()));
    s.send_settled(None, Ok(()), &mut out);
    s.send_settled(None, Ok(()), &mut out);
    assert_eq!(s.sends_in_flight(), 0, "never below zero");
    // A refused SEND never goes in flight.
    feed(&mut s, send("bad", &[]));
    assert_eq!(s.sends_in_flight(), 0);
}

#[test]
fn disconnect_receipt_follows_every_earlier_answer() {
    let mut s = connected();
    feed(
        &mut s,
        frame(Command::Subscribe, &[("id", "e"), ("destination", ERRORS_QUEUE)]),
    );
    feed(&mut s, send("a", &[("receipt", "ra")]));
    feed(&mut s, send("b", &[("receipt", "rb")]));
    let out = feed(&mut s, frame(Command::Disconnect, &[("receipt", "bye")]));
    assert!(out.is_empty(), "waits for the SENDs in flight: {out:?}");
    assert!(!s.wants_read(&cfg()) && !s.is_closed());
    assert!(s.principal().is_some(), "still the user's session while draining");
    // Frames after DISCONNECT are ignored.
    assert!(feed(&mut s, send("late", &[])).is_empty());

    let mut out = Vec::new();
    s.send_settled(Some("ra"), Ok(()), &mut out);
    assert_eq!(receipts(&out), ["ra"]);
    let failure = AppError {
        code: "SERVICE_UNAVAILABLE",
        message: "later".into(),
    };
    s.send_settled(Some("rb"), Err(failure), &mut out);
    assert_eq!(receipts(&out), ["ra", "bye"]);
    assert_eq!(
        app_errors(&out)[0]["receipt-id"],
        "rb",
        "the error still reaches the client"
    );
    assert!(matches!(out.last(), Some(Action::Close)));
    assert!(s.is_closed());
}

#[test]
fn answers_after_the_session_ended_say_nothing() {
    let mut s = connected();
    feed(
        &mut s,
        frame(Command::Subscribe, &[("id", "e"), ("destination", ERRORS_QUEUE)]),
    );
    feed(&mut s, send("a", &[("receipt", "ra")]));
    let mut out = Vec::new();
    s.fail("server shutting down", "bye", None, &mut out);
    let mut late = Vec::new();
    s.send_settled(Some("ra"), Ok(()), &mut late);
    s.sends_committed(5, &mut late);
    s.group_settled(&[Some("x")], Some("c"), Ok(()), &mut late);
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(s.sends_in_flight(), 0);
}
