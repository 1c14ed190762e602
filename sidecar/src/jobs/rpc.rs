//! The `jobs.*` RPC methods (protobuf, as RoadRunner's `jobs` plugin `rpc.go`): `Push`,
//! `PushBatch`, `Pause`, `Resume`, `List`, `Declare`, `Destroy`, `Stat`.

use std::collections::BTreeMap;

use prost::Message;

use super::job::{Headers, Job};
use super::{Jobs, JobsError, proto};
use crate::rpc::ProtoService;

/// `jobs` on the RPC server.
#[derive(Debug, Clone)]
pub struct JobsRpc {
    jobs: Jobs,
}

impl JobsRpc {
    pub fn new(jobs: Jobs) -> JobsRpc {
        JobsRpc { jobs }
    }
}

fn decode<M: Message + Default>(method: &str, arg: &[u8]) -> Result<M, String> {
    M::decode(arg)
        .map_err(|e| format!("{method}: the argument is not a valid protobuf message: {e}"))
}

fn err(e: JobsError) -> String {
    e.to_string()
}

/// A job as the PHP library sends it (`jobs.v1.Job`); `pipeline` comes from its options.
pub fn from_proto(j: proto::Job) -> Result<Job, String> {
    if j.id.is_empty() {
        return Err("empty ID field not allowed".to_string());
    }
    let options = j.options.unwrap_or_default();
    let headers: Headers = j.headers.into_iter().map(|(k, v)| (k, v.value)).collect();
    Ok(Job {
        name: j.job,
        id: j.id,
        payload: j.payload,
        headers,
        pipeline: options.pipeline,
        priority: options.priority,
        delay: u64::try_from(options.delay).unwrap_or(0),
        auto_ack: options.auto_ack,
    })
}

impl ProtoService for JobsRpc {
    const NAME: &'static str = "jobs";

    async fn call_proto(&self, method: &str, arg: &[u8]) -> Result<Vec<u8>, String> {
        let empty = || Ok(proto::Empty {}.encode_to_vec());
        match method {
            "Push" => {
                let req: proto::PushRequest = decode(method, arg)?;
                let job = req.job.ok_or("job is required")?;
                self.jobs.push(from_proto(job)?).await.map_err(err)?;
                empty()
            }
            "PushBatch" => {
                let req: proto::PushBatchRequest = decode(method, arg)?;
                for job in req.jobs {
                    self.jobs.push(from_proto(job)?).await.map_err(err)?;
                }
                empty()
            }
            "Pause" | "Resume" => {
                let req: proto::Pipelines = decode(method, arg)?;
                for name in &req.pipelines {
                    if method == "Pause" {
                        self.jobs.pause(name).await.map_err(err)?;
                    } else {
                        self.jobs.resume(name).await.map_err(err)?;
                    }
                }
                empty()
            }
            "List" => Ok(proto::Pipelines {
                pipelines: self
                    .jobs
                    .pipelines()
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect(),
            }
            .encode_to_vec()),
            "Declare" => {
                let req: proto::DeclareRequest = decode(method, arg)?;
                let map: BTreeMap<String, String> = req.pipeline.into_iter().collect();
                self.jobs.declare(&map).await.map_err(err)?;
                empty()
            }
            "Destroy" => {
                let req: proto::Pipelines = decode(method, arg)?;
                let mut destroyed = Vec::new();
                for name in req.pipelines {
                    self.jobs.destroy(&name).await.map_err(err)?;
                    destroyed.push(name);
                }
                Ok(proto::Pipelines {
                    pipelines: destroyed,
                }
                .encode_to_vec())
            }
            "Stat" => Ok(proto::Stats {
                stats: self.jobs.stat().await,
            }
            .encode_to_vec()),
            _ => Err(format!("rpc: can't find method jobs.{method}")),
        }
    }
}
