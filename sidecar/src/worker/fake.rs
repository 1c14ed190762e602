//! An in-memory echo worker for the criterion benchmarks (feature `fake-workers`): the
//! "PHP" side is a task on the far end of a `tokio::io::duplex` that answers every job
//! with its own context and body, so a benchmark measures pacer's side of a job (lease,
//! frame encode, reply decode, return) and nothing of PHP or the kernel. Not for
//! production use; the pool's own unit tests have a richer fake (`pool/tests.rs`).

use std::sync::Arc;

use futures_util::StreamExt;
use tokio_util::codec::FramedRead;

use super::{Exit, ProcessHandle, Worker, WorkerIdent, WorkerInfo};
use crate::relay::{FrameCodec, Options, Relay, flags};

/// A worker whose PHP side echoes each job; `pid` must be above the kernel's `pid_max`
/// (2^22), so that a kill could never reach a real process. `on_exit` runs when the
/// echo task ends (the relay closed, or a stop frame).
pub fn echo_worker(ident: WorkerIdent, pid: u32, on_exit: Box<dyn FnOnce(Exit) + Send>) -> Worker {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (our_read, our_write) = tokio::io::split(ours);
    let (php_read, php_write) = tokio::io::split(theirs);
    let (handle, _commands) = ProcessHandle::fake(pid);
    tokio::spawn(async move {
        let mut frames = FramedRead::new(php_read, FrameCodec::default());
        let mut out = Relay::new(tokio::io::empty(), php_write, FrameCodec::default());
        while let Some(Ok(frame)) = frames.next().await {
            if frame.has_flag(flags::CONTROL) {
                break;
            }
            let ctx = frame.options.get(0).unwrap_or(0);
            if out
                .send_parts(0, 0, &Options::one(ctx), &[&frame.payload])
                .await
                .is_err()
            {
                break;
            }
        }
        on_exit(Exit { pid, status: None });
    });
    let info = Arc::new(WorkerInfo::new(
        ident,
        pid,
        0,
        "fake-php echo".into(),
        handle,
    ));
    Worker::new(Relay::new(our_read, our_write, FrameCodec::default()), info)
}
