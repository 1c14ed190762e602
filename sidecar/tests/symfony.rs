//! Symfony in worker mode: `examples/symfony` (a stock Symfony 5.4 app on Debian's
//! packages: FrameworkBundle, SecurityBundle with a form login, TwigBundle, native file
//! sessions, SQLite through PDO) whose own `public/index.php` is the worker, through the
//! Symfony Runtime `Pacer\Symfony\Runtime` (APP_RUNTIME in the app's `.rr.yaml`), served
//! by the real `pacer` binary over HTTP with cookie-keeping clients.
//!
//! As for Laravel, the leak tests run ONE worker, and their control runs the same probes
//! on a worker without any reset (`testdata/workers/symfony-no-reset.php`: the
//! services_resetter never runs) and expects the leaks to show.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::apps::*;
use common::binary::PacerBin;
use common::leaks::{self, LeakProbes};
use common::repo_root;

/// The app's own front controller, as its `.rr.yaml` starts it.
const FRONT_CONTROLLER: &str = "php public/index.php";

/// A fresh copy of the example app (cache warmed, database created), served by `workers`
/// workers running `command`.
async fn symfony(workers: usize, command: &str) -> PacerBin {
    for (file, package) in [
        (
            "Symfony/Component/Runtime/autoload.php",
            "php-symfony-runtime",
        ),
        (
            "Symfony/Bundle/FrameworkBundle/autoload.php",
            "php-symfony-framework-bundle",
        ),
        (
            "Symfony/Bundle/SecurityBundle/autoload.php",
            "php-symfony-security-bundle",
        ),
        (
            "Symfony/Bundle/TwigBundle/autoload.php",
            "php-symfony-twig-bundle",
        ),
        (
            "Symfony/Component/Dotenv/autoload.php",
            "php-symfony-dotenv",
        ),
        ("Symfony/Component/Yaml/autoload.php", "php-symfony-yaml"),
    ] {
        require_php_file(file, package);
    }
    let dir = tempfile::tempdir().unwrap();
    let app = copy_app("symfony", dir.path());
    php_in(&app, &["bin/console", "cache:warmup"]);
    php_in(&app, &["bin/console", "app:database"]);
    serve_app(dir, &app, command, workers, &[]).await
}

fn no_reset() -> String {
    format!(
        "php {}",
        repo_root()
            .join("testdata/workers/symfony-no-reset.php")
            .display()
    )
}

#[tokio::test]
async fn stock_front_controller_serves_routes_twig_database_uploads_and_errors() {
    let pacer = symfony(2, FRONT_CONTROLLER).await;
    let mut b = Browser::new(&pacer);

    // A route, a controller, a Twig template with a layout and a global, one DB read.
    post_page(&mut b).await;

    // Not found and an exception: Symfony's error pages, no details in prod.
    let missing = b.get("/posts/999").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("Not Found"), "{}", missing.text());
    let boom = b.get("/boom").await;
    assert_eq!(boom.status, 500);
    assert!(
        boom.text().contains("Internal Server Error"),
        "{}",
        boom.text()
    );
    assert!(!boom.text().contains("boom: a bug"));

    // A wrong CSRF token on the login form: back to the form, not logged in.
    let refused = b
        .post_form(
            "/login",
            &[
                ("_csrf_token", "forged"),
                ("_username", "alice@example.org"),
                ("_password", "alice-secret"),
            ],
        )
        .await;
    assert_eq!(refused.status, 302);
    assert!(
        refused
            .header("location")
            .is_some_and(|l| l.ends_with("/login"))
    );
    assert_eq!(me(&mut b).await, serde_json::Value::Null);

    // An upload, moved with UploadedFile::move() (so pacer's temp file is accepted).
    upload(&mut b).await;
    let none = b
        .request(
            "POST",
            "/upload",
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from("note=x"),
        )
        .await;
    assert_eq!(none.status, 422, "{}", none.text());

    // A streamed response (sent by pacer, not from inside Kernel::handle()), a file, and
    // output printed by a controller.
    let stream = stream_download_and_echo(&mut b, &pacer).await;
    assert_eq!(
        stream.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );

    let robots = b.get("/robots.txt").await;
    assert_eq!(robots.text(), "hello from public/\n");
    pacer.stop().await;
}

/// The app for the leak tests ([`common::leaks`]).
struct Symfony;

impl LeakProbes for Symfony {
    const NOTES: &'static str = "/notes";

    async fn serve(&self, resets: bool) -> PacerBin {
        if resets {
            symfony(1, FRONT_CONTROLLER).await
        } else {
            symfony(1, &no_reset()).await
        }
    }

    /// Users and sessions across clients; returns what leaked.
    async fn user_probes(&self, pacer: &PacerBin) -> Vec<&'static str> {
        let mut leaks = Vec::new();
        let (mut alice, mut bob) = leaks::alice_and_bob(
            pacer,
            "_csrf_token",
            &[
                ("_username", "alice@example.org"),
                ("_password", "alice-secret"),
            ],
        )
        .await;

        if me(&mut bob).await != serde_json::Value::Null {
            leaks.push("logged-in user (token storage)");
        }
        if bob.get("/dashboard").await.status != 302 {
            leaks.push("dashboard without login");
        }
        let mine = alice.get("/dashboard").await;
        assert!(mine.text().contains("alice@example.org"), "{}", mine.text());

        alice.get("/session/put?key=color&value=red").await;
        // A client without a session cookie must start a session of its own.
        let mut carol = Browser::new(pacer);
        if carol.get("/session/get?key=color").await.json()["value"] != serde_json::Value::Null {
            leaks.push("session of the previous client");
        }
        assert_eq!(
            alice.get("/session/get?key=color").await.json()["value"],
            "red"
        );
        if me(&mut alice).await != "alice@example.org" {
            leaks.push("user of another client");
        }
        leaks
    }

    /// Request-bound state in services; returns what leaked.
    async fn state_probes(&self, pacer: &PacerBin) -> Vec<&'static str> {
        let mut leaks = Vec::new();
        let mut b = Browser::new(pacer);

        assert_eq!(
            b.get("/probe/context/first").await.json()["path"],
            "/probe/context/first"
        );
        if b.get("/probe/context/second").await.json()["path"] != "/probe/context/second" {
            leaks.push("request-bound service");
        }

        let open = b
            .post_form("/probe/transaction", &[("text", "uncommitted")])
            .await;
        assert_eq!(open.json()["in_transaction"], true, "{}", open.text());
        let notes = b.get("/notes").await.json();
        if notes["in_transaction"] != false || notes["texts"].to_string().contains("uncommitted") {
            leaks.push("open transaction");
        }
        leaks
    }
}

#[tokio::test]
async fn logged_in_user_and_session_stay_with_their_client() {
    leaks::logged_in_user_and_session_stay_with_their_client(&Symfony).await;
}

#[tokio::test]
async fn request_state_does_not_reach_the_next_request() {
    leaks::request_state_does_not_reach_the_next_request(&Symfony).await;
}

#[tokio::test]
async fn without_the_resets_every_probe_sees_its_leak() {
    // The firewall itself sets the token of every request (from its session, or none), so
    // the user does not leak even here; the session does: PHP's session id of the previous
    // request is what Symfony gives a client without a session cookie.
    leaks::without_the_resets_every_probe_sees(
        &Symfony,
        &["session of the previous client"],
        &["request-bound service", "open transaction"],
    )
    .await;
}

#[tokio::test]
async fn a_fatal_error_answers_500_and_replaces_the_worker() {
    let pacer = symfony(1, FRONT_CONTROLLER).await;
    let mut b = Browser::new(&pacer);
    assert_eq!(b.get("/posts/1").await.status, 200);
    let before = common::binary::children_of(pacer.pid());

    let fatal = b.get("/fatal").await;
    assert_eq!(fatal.status, 500, "{}", fatal.text());
    assert!(
        fatal.text().contains("Internal Server Error"),
        "{}",
        fatal.text()
    );
    let next = b.get("/posts/1").await;
    assert_eq!(next.status, 200, "{}", pacer.stderr());
    let after = common::binary::children_of(pacer.pid());
    assert!(
        before.iter().all(|pid| !after.contains(pid)),
        "a process that hit a fatal error is not reused: {before:?} → {after:?}"
    );
    pacer.stop().await;
}
