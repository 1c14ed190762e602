//! Tenant input safety against the real API server: a PhpAppServer's
//! `tuning.metrics.prometheusUrl` reaches only URLs the operator allows, carries the
//! bearer token from the tenant's Secret, and no response body of what it queried ever
//! reaches the object's status.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pacer_crds::PhpAppServer;
use pacer_operator::metrics_source::http::HttpClient;
use pacer_operator::metrics_source::{Direct, Prometheus, Router};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::wait_for;

const WAIT: Duration = Duration::from_secs(30);
const LEAK: &str = "INTERNAL-ADMIN-PAGE-do-not-show";

/// A stand-in for something inside the cluster: counts connections, records the
/// Authorization header, answers a PromQL vector to `Bearer right-token` and 401 with a
/// body that must never be echoed to anyone else.
struct Server {
    url: String,
    connections: Arc<AtomicUsize>,
    authorizations: Arc<Mutex<Vec<String>>>,
}

async fn server(ip: &str) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let connections = Arc::new(AtomicUsize::new(0));
    let authorizations = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (connections.clone(), authorizations.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let auth = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("authorization: ")
                            .or_else(|| l.strip_prefix("Authorization: "))
                    })
                    .unwrap_or("")
                    .to_owned();
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(auth.clone());
                let (status, body) = if auth == "Bearer right-token" {
                    (
                        "200 OK",
                        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#
                            .to_owned(),
                    )
                } else {
                    ("401 Unauthorized", format!("{LEAK}: who are you?"))
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(Server {
        url,
        connections,
        authorizations,
    })
}

fn app(name: &str, url: &str, secret: Option<(&str, &str)>) -> Result<PhpAppServer> {
    let mut metrics = json!({"source": "Prometheus", "prometheusUrl": url});
    if let Some((name, key)) = secret {
        metrics["bearerTokenSecret"] = json!({"name": name, "key": key});
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "pacer.dev/v1alpha2", "kind": "PhpAppServer",
        "metadata": {"name": name},
        "spec": {"image": "shop:1", "command": ["php", "worker.php"],
                 "tuning": {"interval": "5s", "metrics": metrics}}
    }))?)
}

async fn degraded(api: &Api<PhpAppServer>, name: &str) -> Result<Option<String>> {
    Ok(common::find_condition(api, name, "Degraded")
        .await?
        .filter(|c| c.status == "True")
        .map(|c| c.message))
}

/// A running pod of `app`, so that there is something to query for.
async fn running_pod(client: &Client, ns: &str, app: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-1"), "labels": {"pacer.dev/app": app,
                     "app.kubernetes.io/managed-by": "pacer-operator"}},
        "spec": {"containers": [{"name": "app", "image": "shop:1"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    pods.patch_status(
        &format!("{app}-1"),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.0.0.7"}})),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn prometheus_urls_are_allowed_by_the_operator_and_bodies_stay_out_of_status() -> Result<()> {
    common::init_logging();
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    common::install_crd(&client).await?;
    let ns = cp.new_namespace("tenant").await?;
    // The allowed Prometheus on 127.0.0.1; a forbidden target on another loopback address.
    let allowed = server("127.0.0.1").await?;
    let forbidden = server("127.0.0.2").await?;
    let http = HttpClient::new(Duration::from_secs(5))?;
    let source = Arc::new(Router::new(
        Direct::new(http.clone()),
        Prometheus::new(http),
    ));
    let op = common::start_operator(client.clone(), &ns, "op-a", source);
    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    for name in ["elsewhere", "wrong-token", "right-token"] {
        running_pod(&client, &ns, name).await?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for (name, token) in [("wrong", "guess"), ("right", "right-token")] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {"token": token}
        }))?;
        secrets.create(&PostParams::default(), &secret).await?;
    }

    // A URL outside the allow-list is refused without a single connection.
    apps.create(
        &PostParams::default(),
        &app("elsewhere", &format!("{}/admin", forbidden.url), None)?,
    )
    .await?;
    wait_for(WAIT, "Degraded: not allowed", || async {
        Ok(degraded(&apps, "elsewhere")
            .await?
            .is_some_and(|m| m.contains("not among the Prometheus URLs")))
    })
    .await?;
    assert_eq!(
        forbidden.connections.load(Ordering::SeqCst),
        0,
        "the operator forwarded a request"
    );

    // The wrong token: the server's 401 is reported by its code, its body is not.
    apps.create(
        &PostParams::default(),
        &app("wrong-token", &allowed.url, Some(("wrong", "token")))?,
    )
    .await?;
    wait_for(WAIT, "Degraded: HTTP 401", || async {
        Ok(degraded(&apps, "wrong-token")
            .await?
            .is_some_and(|m| m.contains("HTTP 401")))
    })
    .await?;
    let status = serde_json::to_string(&apps.get("wrong-token").await?.status)?;
    assert!(
        !status.contains(LEAK),
        "a response body reached the status: {status}"
    );

    // The right token, from the tenant's Secret: the queries carry it and succeed.
    apps.create(
        &PostParams::default(),
        &app("right-token", &allowed.url, Some(("right", "token")))?,
    )
    .await?;
    wait_for(WAIT, "Tuned: collecting metrics", || async {
        let s = apps.get("right-token").await?.status.unwrap_or_default();
        Ok(s.conditions
            .iter()
            .any(|c| c.type_ == "Tuned" && c.reason == "CollectingMetrics"))
    })
    .await?;
    assert!(degraded(&apps, "right-token").await?.is_none());
    let seen = allowed
        .authorizations
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(seen.iter().any(|a| a == "Bearer right-token"), "{seen:?}");
    assert!(seen.iter().any(|a| a == "Bearer guess"), "{seen:?}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let notes: Vec<String> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .collect();
    assert!(
        !notes.iter().any(|n| n.contains(LEAK)),
        "a response body reached an Event"
    );
    op.stop().await.context("stopping")
}
