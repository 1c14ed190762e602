#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the project's own test data:
the golden Goridge frames (testdata/goridge/frames.json), real request heads, response
contexts as PHP writes them, form bodies, examples/hello/.rr.yaml, and static paths.

Run it from anywhere after changing those sources; the output is committed. Each
target's input layout is described at the top of its fuzz_targets/<target>.rs.
"""

import json
import pathlib
import shutil
import struct
import zlib

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent


def write(target, name, data):
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def frame(flags, payload, options=(), byte10=0):
    head = bytes([0x10 | (3 + len(options)), flags]) + struct.pack("<I", len(payload))
    out = head + struct.pack("<I", zlib.crc32(head)) + bytes([byte10, 0])
    for o in options:
        out += struct.pack("<I", o)
    return out + payload


def frame_decoder():
    golden = json.loads((ROOT / "testdata/goridge/frames.json").read_text())
    stream = b""
    for f in golden["frames"]:
        raw = bytes.fromhex(f["hex"])
        stream += raw
        # byte 0 selects the maximum frame size (7: 1 GiB, 4: 64 bytes), byte 1 the chunks
        write("frame_decoder", f["name"], b"\x07\x00" + raw)
    for f in golden["bad"]:
        write("frame_decoder", f["name"], b"\x07\x00" + bytes.fromhex(f["hex"]))
    write("frame_decoder", "all_golden_frames", b"\x07\x2a" + stream)
    write("frame_decoder", "all_golden_frames_max_64", b"\x04\x11" + stream)
    # an announced 4 GiB payload behind a valid header
    huge = bytes([0x13, 0x08]) + b"\xff\xff\xff\xff"
    huge += struct.pack("<I", zlib.crc32(huge)) + b"\x00\x00"
    write("frame_decoder", "announces_4gib", b"\x05\x00" + huge)
    write("frame_decoder", "cut_off", b"\x07\x03" + stream[:-5])
    # bit 7 of byte 0: the harness fixes the CRCs up, so mutated headers get past them
    write("frame_decoder", "all_golden_frames_crc_fixed", b"\x87\x05" + stream)
    write("frame_decoder", "pid_request_crc_fixed_max_12", b"\x83\x00" + bytes.fromhex(golden["frames"][0]["hex"]))


HEADS = {
    "browser_get": b"GET /search?q=rust+lang&page=2 HTTP/1.1\r\nHost: shop.test\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\nCookie: sid=abc%3D; theme=dark; \"q\"=\"v\"\r\n"
    b"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nConnection: keep-alive\r\n\r\n",
    "form_post": b"POST /login HTTP/1.1\r\nHost: app.test:8080\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n"
    b"Origin: http://app.test:8080\r\n\r\nrole=admin&ids[]=1&ids[]=2",
    "multipart_upload": b"POST /upload HTTP/1.1\r\nHost: files.test\r\n"
    b"Content-Type: multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
    b"Content-Length: 1024\r\n\r\nfile=a.txt&docs[0]=b.pdf",
    "multipart_bad_boundary": b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data\r\n\r\n",
    "json_api_h2": b"PATCH /api/v1/items/42?fields=a,b HTTP/2\r\ncontent-type: application/json\r\n"
    b"cookie: a=1\r\ncookie: b=2\r\nauthorization: Bearer eyJhbGciOi\r\nx-request-id: 7f3a\r\n\r\n",
    "h2_authority": b"GET https://h2.test/a?b=c HTTP/2\r\nhost: other\r\n\r\n",
    "absolute_form": b"GET http://proxy.test/x?y=1 HTTP/1.1\r\nHost: ignored\r\n\r\n",
    "http10_no_host": b"GET /a HTTP/1.0\r\n\r\n",
    "options_star": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "connect": b"CONNECT h.test:443 HTTP/1.1\r\nHost: h.test:443\r\n\r\n",
    "chunked_head": b"HEAD /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 5\r\n\r\n",
    "obs_text": b"GET /%C3%A9t%C3%A9 HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9\r\n\r\n",
    "encoded_crlf_query": b"GET /a%20b/%2e%2e?x=%0d%0a HTTP/1.1\r\nHost: h\r\n\r\n",
}


def request_to_payload():
    # byte 0: bit 0 TLS, bit 1 raw_body, bit 2 IPv6 peer; then the peer address
    v4 = b"\x00\xc0\x00\x02\x07"
    v6_tls = b"\x05" + bytes(10) + b"\xff\xff\x0a\x01\x02\x03"
    for name, head in HEADS.items():
        write("request_to_payload", name, v4 + head)
    write("request_to_payload", "browser_get_tls_ipv6", v6_tls + HEADS["browser_get"])
    write("request_to_payload", "form_post_raw_body", b"\x02\x7f\x00\x00\x01" + HEADS["form_post"])


def urlencoded_form():
    for i, body in enumerate(
        [
            "a=1&a=2&a=3",
            "a[]=1&a[]=2",
            "a[b][]=1&a[b][]=2&a[c]=3",
            "options=&options[0][id]=97&options[0][name]=n&id=5",
            "first name=x&a[ b ]=x+y%20z&a;b=1&flag&&",
            "a=1&a[b]=2",
            "user[name]=J%C3%BCrgen&user[roles][]=admin&user[roles][]=dev&csrf=%zz",
            "a" + "[x]" * 126 + "=v",
            "a" + "[x]" * 127 + "=v&b=1",
            "%5B%5D=1&[]=2&]=3&[=4",
        ]
    ):
        write("urlencoded_form", f"form_{i:02}", body)


def proto_response(status, headers):
    def varint(n):
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    def ld(field, data):
        return varint(field << 3 | 2) + varint(len(data)) + data

    msg = varint(1 << 3) + varint(status)
    for name, values in headers:
        value = b"".join(ld(1, v.encode()) for v in values)
        msg += ld(2, ld(1, name.encode()) + ld(2, value))
    return msg


def response_head():
    # byte 0: the frame's codec flags; the rest: the context
    contexts = {
        "php_json": (0x00, '{"status":200,"headers":{"Content-Type":["text\\/html; charset=UTF-8"],"Set-Cookie":["a=1; Path=\\/","b=2"]}}'),
        "php_empty_array": (0x00, '{"status":204,"headers":[]}'),
        "json_flag": (0x08, '{"status":404}'),
        "lenient_values": (0x00, '{"status":200,"headers":{"X-One":"v","X-N":[5,"6"],"X-Null":[null]}}'),
        "trailers": (0x00, '{"status":200,"headers":{"Trailer":["X-Checksum, Content-Length"],"X-Checksum":["abc"],"Content-Length":["3"]}}'),
        "connection_close": (0x00, '{"status":200,"headers":{"Connection":["close, X-Hop"],"X-Hop":["1"],"Transfer-Encoding":["chunked"],"Upgrade":["h2c"]}}'),
        "early_hints": (0x00, '{"status":103,"headers":{"Link":["<\\/app.css>; rel=preload"],"Trailer":["X"]}}'),
        "header_injection": (0x00, '{"status":200,"headers":{"Location":["\\/a\\r\\nSet-Cookie: x=1"]}}'),
        "escaped_name": (0x00, '{"status":302,"headers":{"Loc\\u0061tion":["\\/b"]}}'),
        "stop": (0x00, '{"stop":true}'),
    }
    for name, (codec, ctx) in contexts.items():
        write("response_head", name, bytes([codec]) + ctx.encode())
    golden = json.loads((ROOT / "testdata/goridge/frames.json").read_text())
    for f in golden["frames"]:
        if f["name"] == "http_response_proto":
            raw = bytes.fromhex(f["hex"])
            ctx_len = struct.unpack("<I", raw[12:16])[0]
            write("response_head", "golden_proto", b"\x80" + raw[16 : 16 + ctx_len])
    proto = proto_response(201, [("Content-Type", ["application/json"]), ("Set-Cookie", ["a=1", "b=2"]), ("Trailer", ["X-T"]), ("X-T", ["t"])])
    write("response_head", "proto", b"\x80" + proto)
    write("response_head", "proto_sniffed", b"\x00" + proto)


CONFIGS = {
    "minimal": 'version: "3"\nserver:\n  command: "php worker.php"\nhttp:\n  address: 127.0.0.1:8080\n',
    "include": 'version: "3"\ninclude: [base.yaml]\nserver:\n  command: php w.php\n  relay: tcp://127.0.0.1:7000\n',
    "env_and_units": 'version: "3"\nserver:\n  command: "php ${APP:-worker}.php"\n  env:\n    - A: "1"\n  user: nobody\nhttp:\n  address: "${HOST:-0.0.0.0}:${PORT:-80}"\n  max_request_size: 256\n  raw_body: true\n  trusted_subnets: ["10.0.0.0/8", "::1/128"]\n  uploads:\n    forbid: [".php", ".exe"]\n  pool:\n    num_workers: "4"\n    max_jobs: 0\n    allocate_timeout: 1m30s\n    supervisor:\n      ttl: 1h\n      idle_ttl: 10s\n      max_worker_memory: 256\n      exec_ttl: 500ms\n',
    "anchors": 'version: "2.7"\ndefaults: &d\n  num_workers: 2\nhttp:\n  address: :8080\n  pool:\n    <<: *d\n    Max_Jobs: 10\nlogs:\n  mode: production\n  output: [stderr, /tmp/pacer.log]\nunknown: {a: 1}\njobs: {}\n',
    "bad_version": 'version: 3\n',
    "bad_values": 'version: "3"\nhttp:\n  address: nope\n  pool:\n    num_workers: -1\n    allocate_timeout: soon\n',
}


def config_parser():
    shutil.copy(ROOT / "examples/hello/.rr.yaml", FUZZ / "corpus/config_parser/example_app.rr.yaml")
    for name, text in CONFIGS.items():
        write("config_parser", name + ".yaml", text)


def static_path():
    # byte 0 even: the path as is; odd: segments read with `arbitrary`
    for i, p in enumerate(
        [
            "/css/site.css",
            "//css//site.css",
            "/inside.css",
            "/../outside/secret.txt",
            "/%2e%2e/outside/secret.txt",
            "/css/..%2f..%2foutside/secret.txt",
            "/escape_dir/secret.txt",
            "/up/outside/secret.txt",
            "/alias.txt",
            "/.env",
            "/env.txt",
            "/.htaccess",
            "/UPPER.PHP",
            "/index.php%00.txt",
            "/%C3%BC.txt",
            "/a%20b.txt",
            "/self/self/notes.txt",
            "/loop",
        ]
    ):
        write("static_path", f"path_{i:02}", b"\x00" + p.encode())
    write("static_path", "segments", b"\x01" + bytes(range(1, 64)))


if __name__ == "__main__":
    shutil.rmtree(FUZZ / "corpus", ignore_errors=True)
    (FUZZ / "corpus/config_parser").mkdir(parents=True)
    frame_decoder()
    request_to_payload()
    urlencoded_form()
    response_head()
    config_parser()
    static_path()
