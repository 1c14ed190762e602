//! Laravel in worker mode: `examples/laravel` (a real Laravel 8.83 app on Debian's
//! `php-laravel-framework`, SQLite) served by the real `pacer` binary through
//! `php/bin/laravel-worker.php`, over HTTP with cookie-keeping clients.
//!
//! The leak tests ([`common::leaks`]) run ONE worker, so every request lands in the same
//! PHP process that served the previous one: whatever a request leaves behind, the next
//! one would see. Their control runs the same probes on a worker whose reset does nothing
//! (`testdata/workers/laravel-no-reset.php`) and expects every leak to show — proof that
//! each probe sees the leak it guards against.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::apps::*;
use common::binary::PacerBin;
use common::leaks::{self, LeakProbes};
use common::repo_root;

const BRIDGE: &str = "php/bin/laravel-worker.php";
const NO_RESET: &str = "testdata/workers/laravel-no-reset.php";

/// A fresh copy of the example app, migrated and seeded, served by `workers` workers.
async fn laravel(workers: usize, script: &str) -> PacerBin {
    laravel_with(workers, script, &[]).await
}

async fn laravel_with(workers: usize, script: &str, extra: &[String]) -> PacerBin {
    require_php_file("Illuminate/autoload.php", "php-laravel-framework");
    let dir = tempfile::tempdir().unwrap();
    let app = copy_app("laravel", dir.path());
    std::fs::write(app.join("database/database.sqlite"), "").unwrap();
    php_in(&app, &["artisan", "migrate", "--seed", "--force"]);
    let command = format!("php {}", repo_root().join(script).display());
    serve_app(dir, &app, &command, workers, extra).await
}

#[tokio::test]
async fn routes_middleware_views_database_uploads_and_errors() {
    let pacer = laravel(2, BRIDGE).await;
    let mut b = Browser::new(&pacer);

    // A route, a controller, a Blade view with a layout, one Eloquent read; the global
    // middleware's header; the web group's cookies.
    let post = post_page(&mut b).await;
    served_by(&post);
    assert!(
        b.cookies.is_empty(),
        "a public page without a session: {:?}",
        post.headers
    );
    // The web group's session and CSRF cookies.
    assert_eq!(b.get("/").await.status, 200);
    assert!(b.cookies.contains_key("pacer_session"), "{:?}", b.cookies);
    assert!(b.cookies.contains_key("XSRF-TOKEN"));

    // Not found: Laravel's own 404 page.
    let missing = b.get("/posts/999").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("Not Found"), "{}", missing.text());

    // A POST without the CSRF token is refused (419), with the token it passes.
    let refused = b
        .post_form("/login", &[("email", "alice@example.org")])
        .await;
    assert_eq!(refused.status, 419, "{}", refused.text());

    // JSON validation errors: 422 with the messages of the failed rules.
    let invalid = b
        .request(
            "POST",
            "/api/posts",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            Bytes::from(r#"{"title":"","body":"x"}"#),
        )
        .await;
    assert_eq!(invalid.status, 422, "{}", invalid.text());
    let errors = invalid.json();
    assert_eq!(errors["errors"]["title"][0], "The title field is required.");
    assert!(errors["errors"].get("body").is_none(), "{errors}");
    let created = b
        .request(
            "POST",
            "/api/posts",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            Bytes::from(r#"{"title":"From the test","body":"Stored in SQLite."}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_u64().unwrap();
    let shown = b.get(&format!("/posts/{id}")).await;
    assert!(
        shown.text().contains("Stored in SQLite."),
        "{}",
        shown.text()
    );

    // An upload: validated as a file (so Laravel accepts pacer's temp file), stored with
    // store(), read back from disk.
    assert_eq!(upload(&mut b).await["valid"], true);
    // Without the file: the `required` rule fails (422 for a JSON client).
    let no_file = b
        .request(
            "POST",
            "/upload",
            &[
                ("accept", "application/json"),
                ("content-type", "application/json"),
            ],
            Bytes::from("{}"),
        )
        .await;
    assert_eq!(no_file.status, 422, "{}", no_file.text());

    // A streamed response, a file download, output printed by a controller.
    stream_download_and_echo(&mut b, &pacer).await;

    // An exception: Laravel's error page, 500, and the worker keeps serving.
    let boom = b.get("/boom").await;
    assert_eq!(boom.status, 500);
    assert!(boom.text().contains("Server Error"), "{}", boom.text());
    assert!(
        !boom.text().contains("boom: a bug"),
        "debug is off: no details"
    );
    let after = b.get("/posts/1").await;
    assert_eq!(after.status, 200);

    // Static files come from public/ without PHP.
    let robots = b.get("/robots.txt").await;
    assert_eq!(robots.text(), "hello from public/\n");
    assert!(robots.header("x-served-by").is_none());
    pacer.stop().await;
}

/// The app for the leak tests ([`common::leaks`]).
struct Laravel;

impl LeakProbes for Laravel {
    const NOTES: &'static str = "/api/notes";

    async fn serve(&self, resets: bool) -> PacerBin {
        laravel(1, if resets { BRIDGE } else { NO_RESET }).await
    }

    /// The probes of [`logged_in_user_and_session_stay_with_their_client`]; returns what
    /// leaked from one client to another.
    async fn user_probes(&self, pacer: &PacerBin) -> Vec<&'static str> {
        let mut leaks = Vec::new();
        let (mut alice, mut bob) = leaks::alice_and_bob(
            pacer,
            "_token",
            &[("email", "alice@example.org"), ("password", "alice-secret")],
        )
        .await;

        // Another client, no cookies: a guest, kept out of the dashboard.
        if me(&mut bob).await != serde_json::Value::Null {
            leaks.push("logged-in user (guard)");
        }
        let dashboard = bob.get("/dashboard").await;
        if dashboard.status != 302 {
            leaks.push("dashboard without login");
        }
        let mine = alice.get("/dashboard").await;
        assert!(
            mine.text()
                .contains("Hello, <span class=\"user\">Alice</span>"),
            "{}",
            mine.text()
        );

        // Session data stays in its own session.
        alice.get("/session/put?key=color&value=red").await;
        if bob.get("/session/get?key=color").await.json()["value"] != serde_json::Value::Null {
            leaks.push("session data");
        }
        assert_eq!(
            alice.get("/session/get?key=color").await.json()["value"],
            "red"
        );

        // A user set for one request only (Auth::onceUsingId).
        let mut anon = Browser::new(pacer);
        assert_eq!(
            anon.get("/probe/once/2").await.json()["user"],
            "bob@example.org"
        );
        let mut anon2 = Browser::new(pacer);
        if me(&mut anon2).await != serde_json::Value::Null {
            leaks.push("once-user (guard)");
        }

        // Alice is still Alice (not the once-user of another client).
        if me(&mut alice).await != "alice@example.org" {
            leaks.push("user of another client");
        }
        leaks
    }

    /// The probes of [`request_state_does_not_reach_the_next_request`]: each changes some
    /// state in one request and reads it back in the next. Returns what leaked.
    async fn state_probes(&self, pacer: &PacerBin) -> Vec<&'static str> {
        let mut leaks = Vec::new();
        let mut b = Browser::new(pacer);

        // The config repository.
        let set = b.get("/probe/config?set=leaky").await.json();
        assert_eq!(set["now"], "leaky");
        if b.get("/probe/config").await.json()["before"] == "leaky" {
            leaks.push("config");
        }

        // A singleton built from the request that first resolved it.
        assert_eq!(
            b.get("/probe/singleton/first").await.json()["path"],
            "/probe/singleton/first"
        );
        if b.get("/probe/singleton/second").await.json()["path"] != "/probe/singleton/second" {
            leaks.push("request-bound singleton");
        }

        // A scoped instance: the counter starts at zero in every request.
        assert_eq!(b.get("/probe/scoped").await.json()["count"], 2);
        if b.get("/probe/scoped").await.json()["count"] != 2 {
            leaks.push("scoped instance");
        }

        // Data shared with every view at runtime (the boot-time share must stay).
        assert!(
            b.get("/probe/share?banner=LEAKED-BANNER")
                .await
                .text()
                .contains("LEAKED-BANNER")
        );
        let home = b.get("/").await.text();
        if home.contains("LEAKED-BANNER") {
            leaks.push("view shared data");
        } else {
            assert!(home.contains("Welcome to Pacer"), "{home}");
        }

        // The locale.
        assert_eq!(b.get("/probe/locale?set=de").await.json()["locale"], "de");
        if b.get("/probe/locale").await.json()["locale"] != "en" {
            leaks.push("locale");
        }

        // A cookie queued where no middleware sends it.
        b.get("/api/probe/queue-cookie").await;
        let mut other = Browser::new(pacer);
        other.get("/").await;
        if other.cookies.contains_key("leaked") {
            leaks.push("queued cookie");
        }

        // A transaction left open: its row must not be seen or committed later.
        let open = b
            .post_form("/api/probe/transaction", &[("text", "uncommitted")])
            .await;
        assert_eq!(open.json()["transaction_level"], 1, "{}", open.text());
        let notes = b.get("/api/notes").await.json();
        if notes["transaction_level"] != 0 || notes["texts"].to_string().contains("uncommitted") {
            leaks.push("open transaction");
        }
        leaks
    }
}

#[tokio::test]
async fn logged_in_user_and_session_stay_with_their_client() {
    leaks::logged_in_user_and_session_stay_with_their_client(&Laravel).await;
}

#[tokio::test]
async fn request_state_does_not_reach_the_next_request() {
    leaks::request_state_does_not_reach_the_next_request(&Laravel).await;
}

#[tokio::test]
async fn without_the_resets_every_probe_sees_its_leak() {
    leaks::without_the_resets_every_probe_sees(
        &Laravel,
        &[
            "logged-in user (guard)",
            "dashboard without login",
            "session data",
            "once-user (guard)",
            "user of another client",
        ],
        &[
            "config",
            "request-bound singleton",
            "scoped instance",
            "view shared data",
            "locale",
            "queued cookie",
            "open transaction",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_fatal_error_answers_500_and_replaces_the_worker() {
    fatal_error_answers_500_and_replaces_the_worker(&[]).await;
}

/// Over a socket relay the dying worker cannot refuse the next request by closing its
/// input: it takes it and hands it back (Worker::stop), and pacer runs it elsewhere.
#[tokio::test]
async fn a_fatal_error_over_a_tcp_relay() {
    fatal_error_answers_500_and_replaces_the_worker(&["server.relay=tcp://127.0.0.1:0".into()])
        .await;
}

async fn fatal_error_answers_500_and_replaces_the_worker(extra: &[String]) {
    let pacer = laravel_with(1, BRIDGE, extra).await;
    let mut b = Browser::new(&pacer);
    let first = served_by(&b.get("/posts/1").await);

    // An exception is the app's business: error page, same worker.
    let boom = b.get("/boom").await;
    assert_eq!(boom.status, 500);
    assert_eq!(served_by(&boom), first);

    // Memory exhausted: PHP dies. The client still gets Laravel's error page (rendered by
    // its shutdown handler), then pacer starts a new worker.
    let fatal = b.get("/fatal").await;
    assert_eq!(fatal.status, 500, "{}", fatal.text());
    assert!(fatal.text().contains("Server Error"), "{}", fatal.text());
    let next = b.get("/posts/1").await;
    assert_eq!(next.status, 200, "{}", pacer.stderr());
    assert_ne!(
        served_by(&next),
        first,
        "a process that hit a fatal error is not reused"
    );
    pacer.stop().await;
}
