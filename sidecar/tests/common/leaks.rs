//! The leak tests both framework apps run (`laravel.rs`, `symfony.rs`) on ONE worker, so
//! every request lands in the PHP process that served the previous one: whatever a
//! request leaves behind, the next one would see. Each app brings its own probes
//! ([`LeakProbes`]); their control runs the same probes on a worker whose resets do
//! nothing and expects each of them to see its leak.

use super::apps::{Browser, log_in, me};
use super::binary::PacerBin;

/// A framework app's probes: each changes some state in one request and reads it back in
/// the next one, or from another client.
pub trait LeakProbes {
    /// Where a form posts a note (`text`) in a transaction, and GET lists them (`texts`).
    const NOTES: &'static str;
    /// A fresh copy of the app served by one worker: the app's own worker, or (`resets`
    /// false) one whose resets do nothing.
    async fn serve(&self, resets: bool) -> PacerBin;
    /// Users and sessions across clients; returns what leaked.
    async fn user_probes(&self, pacer: &PacerBin) -> Vec<&'static str>;
    /// Request-bound state; returns what leaked into the next request.
    async fn state_probes(&self, pacer: &PacerBin) -> Vec<&'static str>;
}

pub async fn logged_in_user_and_session_stay_with_their_client(app: &impl LeakProbes) {
    let pacer = app.serve(true).await;
    let leaks = app.user_probes(&pacer).await;
    assert!(leaks.is_empty(), "leaked between clients: {leaks:?}");
    pacer.stop().await;
}

pub async fn request_state_does_not_reach_the_next_request<A: LeakProbes>(app: &A) {
    let pacer = app.serve(true).await;
    let leaks = app.state_probes(&pacer).await;
    assert!(leaks.is_empty(), "leaked into the next request: {leaks:?}");
    // The next request's transaction commits normally.
    let mut b = Browser::new(&pacer);
    b.post_form(A::NOTES, &[("text", "committed")]).await;
    let notes = b.get(A::NOTES).await.json();
    assert_eq!(notes["texts"], serde_json::json!(["committed"]), "{notes}");
    pacer.stop().await;
}

/// The control: without the resets, the probes see exactly these leaks.
pub async fn without_the_resets_every_probe_sees(
    app: &impl LeakProbes,
    user_leaks: &[&str],
    state_leaks: &[&str],
) {
    let pacer = app.serve(false).await;
    assert_eq!(app.user_probes(&pacer).await, user_leaks);
    assert_eq!(app.state_probes(&pacer).await, state_leaks);
    pacer.stop().await;
}

/// Two clients for the user probes: alice, logged in through the app's form (its CSRF
/// token in `token_field`, then `credentials`), and bob, a guest so far.
pub async fn alice_and_bob(
    pacer: &PacerBin,
    token_field: &str,
    credentials: &[(&str, &str)],
) -> (Browser, Browser) {
    let mut alice = Browser::new(pacer);
    log_in(&mut alice, token_field, credentials).await;
    assert_eq!(me(&mut alice).await, "alice@example.org");
    (alice, Browser::new(pacer))
}
