//! [`Fake`]: a metrics source that returns what the test set, and counts the calls.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;

use super::{Error, MetricsSource, Target};
use crate::sample::AppSample;

/// What the fake answers for one app.
#[derive(Clone, Debug)]
enum Answer {
    Sample(AppSample),
    Fail(String),
}

/// A metrics source for tests: answers per app (namespace, name); apps it was told nothing
/// about get an empty sample (no data yet).
#[derive(Debug, Default)]
pub struct Fake {
    answers: Mutex<HashMap<(String, String), Answer>>,
    calls: Mutex<Vec<Target>>,
    sums: Mutex<HashMap<String, f64>>,
}

impl Fake {
    /// An empty fake.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on answer `sample` for this app.
    pub fn set(&self, namespace: &str, app: &str, sample: AppSample) {
        self.lock_answers()
            .insert((namespace.into(), app.into()), Answer::Sample(sample));
    }

    /// From now on fail for this app.
    pub fn fail(&self, namespace: &str, app: &str, reason: &str) {
        self.lock_answers()
            .insert((namespace.into(), app.into()), Answer::Fail(reason.into()));
    }

    /// From now on answer `value` to the PromQL `query` (others fail).
    pub fn set_query(&self, query: &str, value: f64) {
        self.sums
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(query.to_owned(), value);
    }

    /// The targets asked for so far, oldest first.
    #[must_use]
    pub fn calls(&self) -> Vec<Target> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn lock_answers(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Answer>> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MetricsSource for Fake {
    fn sample<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<AppSample, Error>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(target.clone());
        let answer = self
            .lock_answers()
            .get(&(target.namespace.clone(), target.app.clone()))
            .cloned();
        Box::pin(async move {
            match answer {
                Some(Answer::Sample(sample)) => Ok(sample),
                Some(Answer::Fail(reason)) => Err(Error::Config(reason)),
                None => Ok(AppSample {
                    window: target.window,
                    pods: Vec::new(),
                }),
            }
        })
    }

    fn query_sum<'a>(
        &'a self,
        _url: &'a str,
        _token: Option<&'a str>,
        query: &'a str,
        _now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<f64, Error>> {
        let value = self
            .sums
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(query)
            .copied();
        Box::pin(async move {
            value.ok_or_else(|| Error::Config(format!("the fake knows no query {query}")))
        })
    }
}
