//! `service.v1` protobuf messages of RoadRunner's service RPC (`roadrunner-server/api`
//! `service/v1/service.proto`, with `common.v1.Status`; the PHP `Manager` of
//! `spiral/roadrunner-services` uses the generated classes of
//! `roadrunner-php/roadrunner-api-dto`). Field numbers are the contract.

use std::collections::HashMap;

/// The answer of `Create`, `Restart` and `Terminate`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(bool, tag = "2")]
    pub ok: bool,
}

/// The argument of `Create`. Durations are whole seconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Create {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub command: String,
    #[prost(int64, tag = "3")]
    pub process_num: i64,
    #[prost(int64, tag = "4")]
    pub exec_timeout: i64,
    #[prost(bool, tag = "5")]
    pub remain_after_exit: bool,
    #[prost(map = "string, string", tag = "6")]
    pub env: HashMap<String, String>,
    #[prost(uint64, tag = "7")]
    pub restart_sec: u64,
    #[prost(bool, tag = "8")]
    pub service_name_in_logs: bool,
    #[prost(uint64, tag = "9")]
    pub timeout_stop_sec: u64,
}

/// The answer of `Statuses`: one entry per process copy.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Statuses {
    #[prost(message, repeated, tag = "1")]
    pub status: Vec<Status>,
}

/// One process copy. `status` is set when its state cannot be read (not running).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(float, tag = "1")]
    pub cpu_percent: f32,
    #[prost(int32, tag = "2")]
    pub pid: i32,
    #[prost(uint64, tag = "3")]
    pub memory_usage: u64,
    #[prost(string, tag = "4")]
    pub command: String,
    #[prost(message, optional, tag = "5")]
    pub status: Option<ErrorStatus>,
}

/// `common.v1.Status` (the gRPC error model).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// The argument of `Restart`, `Terminate`, `Status`, `Statuses` (and, unused, `List`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Service {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// The answer of `List`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct List {
    #[prost(string, repeated, tag = "1")]
    pub services: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    // Golden bytes, as protoc-generated code (Go's and PHP's) writes these messages.
    #[test]
    fn create_decodes_from_the_wire() {
        let mut wire = vec![0x0a, 0x04];
        wire.extend_from_slice(b"cron");
        wire.extend_from_slice(&[0x12, 0x07]);
        wire.extend_from_slice(b"sleep 9");
        wire.extend_from_slice(&[0x18, 0x02, 0x20, 0x03, 0x28, 0x01]);
        // env {"A": "b"}: a map entry is a nested message {1: key, 2: value}.
        wire.extend_from_slice(&[0x32, 0x06, 0x0a, 0x01, b'A', 0x12, 0x01, b'b']);
        wire.extend_from_slice(&[0x38, 0x1e, 0x40, 0x01, 0x48, 0x05]);
        let c = Create::decode(&wire[..]).unwrap();
        assert_eq!(c.name, "cron");
        assert_eq!(c.command, "sleep 9");
        assert_eq!(c.process_num, 2);
        assert_eq!(c.exec_timeout, 3);
        assert!(c.remain_after_exit);
        assert_eq!(c.env.get("A").map(String::as_str), Some("b"));
        assert_eq!(c.restart_sec, 30);
        assert!(c.service_name_in_logs);
        assert_eq!(c.timeout_stop_sec, 5);
        assert_eq!(c.encode_to_vec(), wire);
    }

    #[test]
    fn service_and_list_bytes() {
        let s = Service {
            name: "cron".into(),
        };
        assert_eq!(s.encode_to_vec(), b"\x0a\x04cron");
        // PHP sends `new Service()` to List: zero bytes.
        assert_eq!(Service::decode(&b""[..]).unwrap().name, "");
        let l = List {
            services: vec!["a".into(), "bc".into()],
        };
        assert_eq!(l.encode_to_vec(), b"\x0a\x01a\x0a\x02bc");
    }

    #[test]
    fn response_bytes() {
        let ok = Response {
            message: String::new(),
            ok: true,
        };
        // proto3 leaves the empty message out.
        assert_eq!(ok.encode_to_vec(), [0x10, 0x01]);
        assert_eq!(Response::decode(&[0x10, 0x01][..]).unwrap(), ok);
    }

    #[test]
    fn statuses_bytes() {
        let st = Statuses {
            status: vec![
                Status {
                    cpu_percent: 1.5,
                    pid: 300,
                    memory_usage: 4096,
                    command: "sleep 9".into(),
                    status: None,
                },
                Status {
                    cpu_percent: 0.0,
                    pid: 0,
                    memory_usage: 0,
                    command: "x".into(),
                    status: Some(ErrorStatus {
                        code: 0,
                        message: "gone".into(),
                        details: vec![],
                    }),
                },
            ],
        };
        let mut first = vec![0x0d];
        first.extend_from_slice(&1.5f32.to_le_bytes());
        first.extend_from_slice(&[0x10, 0xac, 0x02, 0x18, 0x80, 0x20, 0x22, 0x07]);
        first.extend_from_slice(b"sleep 9");
        let mut second = vec![0x22, 0x01, b'x', 0x2a, 0x06, 0x12, 0x04];
        second.extend_from_slice(b"gone");
        let mut want = vec![0x0a, first.len() as u8];
        want.extend_from_slice(&first);
        want.extend_from_slice(&[0x0a, second.len() as u8]);
        want.extend_from_slice(&second);
        assert_eq!(st.encode_to_vec(), want);
        assert_eq!(Statuses::decode(&want[..]).unwrap(), st);
    }
}
