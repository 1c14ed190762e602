//! beanstalkd's text protocol (its `doc/protocol.txt`): one command line, an optional
//! body, one reply line and, for `RESERVED` and `OK`, a body of the announced length.
//! A [`Conn`] runs one command at a time, as the protocol requires; the reply parser is
//! pure.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The longest reply line beanstalkd sends (`RESERVED <id> <bytes>` and friends).
const MAX_LINE: usize = 256;
/// The largest body pacer reads (beanstalkd's own default `max-job-size` is 64 KiB; a
/// server started with `-z` may allow more, up to 1 GiB).
const MAX_BODY: usize = 1 << 30;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("beanstalkd connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("beanstalkd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("beanstalkd answered {0:?}")]
    Unexpected(String),
}

impl WireError {
    /// Whether the connection is unusable after this error (start over).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, WireError::Unexpected(_))
    }
}

/// A reply's first line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Inserted(u64),
    Buried(Option<u64>),
    /// `RESERVED <id> <bytes>`: the body follows.
    Reserved(u64, usize),
    /// `OK <bytes>`: the body (YAML) follows.
    Ok(usize),
    Using,
    Watching,
    Deleted,
    Released,
    Touched,
    TimedOut,
    DeadlineSoon,
    NotFound,
    /// Any other line (`JOB_TOO_BIG`, `DRAINING`, `OUT_OF_MEMORY`, `BAD_FORMAT`, …).
    Other(String),
}

impl Reply {
    /// The length of the body that follows this line.
    pub fn body_len(&self) -> Option<usize> {
        match self {
            Reply::Reserved(_, n) | Reply::Ok(n) => Some(*n),
            _ => None,
        }
    }
}

/// Parses a reply line (without its `\r\n`).
pub fn parse_reply(line: &str) -> Reply {
    let mut words = line.split(' ');
    let head = words.next().unwrap_or_default();
    let mut num = || words.next().and_then(|w| w.parse::<u64>().ok());
    match head {
        "INSERTED" => num().map_or_else(|| Reply::Other(line.to_string()), Reply::Inserted),
        "BURIED" => Reply::Buried(num()),
        "RESERVED" => match (num(), num()) {
            (Some(id), Some(n)) => match usize::try_from(n) {
                Ok(n) if n <= MAX_BODY => Reply::Reserved(id, n),
                _ => Reply::Other(line.to_string()),
            },
            _ => Reply::Other(line.to_string()),
        },
        "OK" => match num().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n <= MAX_BODY => Reply::Ok(n),
            _ => Reply::Other(line.to_string()),
        },
        "USING" => Reply::Using,
        "WATCHING" => Reply::Watching,
        "DELETED" => Reply::Deleted,
        "RELEASED" => Reply::Released,
        "TOUCHED" => Reply::Touched,
        "TIMED_OUT" => Reply::TimedOut,
        "DEADLINE_SOON" => Reply::DeadlineSoon,
        "NOT_FOUND" => Reply::NotFound,
        _ => Reply::Other(line.to_string()),
    }
}

/// The counts of `stats-tube` (a YAML mapping of `key: value` lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TubeStats {
    pub ready: i64,
    pub delayed: i64,
    pub reserved: i64,
}

pub fn parse_tube_stats(yaml: &[u8]) -> TubeStats {
    let mut s = TubeStats::default();
    for line in String::from_utf8_lossy(yaml).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().parse::<i64>().unwrap_or(0);
        match k.trim() {
            "current-jobs-ready" => s.ready = v,
            "current-jobs-delayed" => s.delayed = v,
            "current-jobs-reserved" => s.reserved = v,
            _ => {}
        }
    }
    s
}

/// A tube name as beanstalkd accepts it: 1–200 bytes of letters, digits and `-+/;.$_()`,
/// not starting with `-`.
pub fn valid_tube(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-+/;.$_()".contains(c))
}

/// One connection to beanstalkd.
#[derive(Debug)]
pub struct Conn {
    io: BufReader<TcpStream>,
    /// Bound on each reply that is not a blocking reserve.
    timeout: Duration,
}

impl Conn {
    /// Connects to `addr` (`host:port`) within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, WireError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| WireError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            io: BufReader::new(stream),
            timeout,
        })
    }

    /// Sends one command (and its body) and reads the reply, its body too, within
    /// `wait` plus the connection's timeout.
    pub async fn call(
        &mut self,
        line: &str,
        body: Option<&[u8]>,
        wait: Duration,
    ) -> Result<(Reply, Bytes), WireError> {
        let limit = wait + self.timeout;
        match tokio::time::timeout(limit, self.call_inner(line, body)).await {
            Ok(r) => r,
            Err(_) => Err(WireError::Timeout(limit)),
        }
    }

    async fn call_inner(
        &mut self,
        line: &str,
        body: Option<&[u8]>,
    ) -> Result<(Reply, Bytes), WireError> {
        let mut out = Vec::with_capacity(line.len() + 2 + body.map_or(0, |b| b.len() + 2));
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(b) = body {
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        self.io.get_mut().write_all(&out).await?;
        let mut head = Vec::with_capacity(64);
        let n = (&mut self.io)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut head)
            .await?;
        if n == 0 {
            return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if !head.ends_with(b"\r\n") {
            return Err(WireError::Unexpected(
                String::from_utf8_lossy(&head).into_owned(),
            ));
        }
        head.truncate(head.len() - 2);
        let reply = parse_reply(&String::from_utf8_lossy(&head));
        let body = match reply.body_len() {
            Some(len) => {
                let mut buf = vec![0; len + 2];
                self.io.read_exact(&mut buf).await?;
                buf.truncate(len);
                Bytes::from(buf)
            }
            None => Bytes::new(),
        };
        Ok((reply, body))
    }

    /// A command whose only good answer is `want`.
    pub async fn expect(&mut self, line: &str, want: &Reply) -> Result<(), WireError> {
        match self.call(line, None, Duration::ZERO).await? {
            (r, _) if &r == want => Ok(()),
            (other, _) => Err(WireError::Unexpected(format!("{other:?} to {line:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply("INSERTED 12"), Reply::Inserted(12));
        assert_eq!(parse_reply("RESERVED 7 300"), Reply::Reserved(7, 300));
        assert_eq!(parse_reply("OK 12"), Reply::Ok(12));
        assert_eq!(parse_reply("BURIED 3"), Reply::Buried(Some(3)));
        assert_eq!(parse_reply("BURIED"), Reply::Buried(None));
        assert_eq!(parse_reply("TIMED_OUT"), Reply::TimedOut);
        assert_eq!(parse_reply("WATCHING 2"), Reply::Watching);
        assert_eq!(parse_reply("NOT_FOUND"), Reply::NotFound);
        assert_eq!(
            parse_reply("JOB_TOO_BIG"),
            Reply::Other("JOB_TOO_BIG".into())
        );
        // A malformed or absurd length is not trusted.
        assert_eq!(
            parse_reply("RESERVED 7 x"),
            Reply::Other("RESERVED 7 x".into())
        );
        assert_eq!(
            parse_reply("OK 99999999999"),
            Reply::Other("OK 99999999999".into())
        );
        assert_eq!(Reply::Reserved(1, 5).body_len(), Some(5));
        assert_eq!(Reply::Deleted.body_len(), None);
    }

    #[test]
    fn tube_stats_parse() {
        let yaml = b"---\nname: emails\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 4\ncurrent-jobs-reserved: 2\ncurrent-jobs-delayed: 1\n";
        assert_eq!(
            parse_tube_stats(yaml),
            TubeStats {
                ready: 4,
                delayed: 1,
                reserved: 2
            }
        );
    }

    #[test]
    fn tube_names() {
        assert!(valid_tube("emails"));
        assert!(valid_tube("a.b_c-1(x)"));
        assert!(!valid_tube(""));
        assert!(!valid_tube("-x"));
        assert!(!valid_tube("with space"));
        assert!(!valid_tube(&"a".repeat(201)));
    }
}
