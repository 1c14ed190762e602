#!/usr/bin/env python3
"""Open-loop HTTP/1.1 load at a fixed rate, latency per status (for the overload bench).

wrk is closed-loop: a slow server slows the offered load down with it, and a fast 503
speeds it up. Overload is about a fixed offered rate, so this sends a request every
1/rate seconds whatever happened to the previous ones (keep-alive connections taken from
an idle pool, a new one when none is idle), and measures each latency from the moment
the request was DUE (no coordinated omission). Standard library only.

    openloop.py URL RATE SECONDS [TIMEOUT]   -> one JSON object on stdout
"""

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def read_chunked(reader):
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            # No trailers expected: the final CRLF.
            await reader.readuntil(b"\r\n")
            return
        await reader.readexactly(size + 2)


async def one(host, port, path, idle, timeout):
    """One request on an idle connection (or a new one). Returns the status, or a
    string naming the failure."""
    conn = idle.pop() if idle else None
    for attempt in (0, 1):
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            reader, writer = conn
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: openloop\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            lines = head.decode("latin-1").split("\r\n")
            status_line = lines[0].split(" ")
            if len(status_line) < 2 or not status_line[1].isdigit():
                conn[1].close()
                return "bad-response"
            status = int(status_line[1])
            length, close, chunked = 0, False, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            if chunked:
                await asyncio.wait_for(read_chunked(reader), timeout)
            elif length:
                await asyncio.wait_for(reader.readexactly(length), timeout)
            if close:
                writer.close()
            else:
                idle.append(conn)
            return status
        except asyncio.TimeoutError:
            conn[1].close()
            return "timeout"
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            # A kept-alive connection the server closed meanwhile: retry once on a new one.
            if conn is not None:
                conn[1].close()
            conn = None
            if attempt == 1:
                return "error"
    return "error"


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round((len(values) - 1) * p)))] * 1e3, 2)


async def main():
    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    idle, tasks, results = [], [], []
    interval = 1.0 / rate
    start = time.perf_counter()
    total = int(rate * seconds)

    async def timed(due):
        status = await one(parts.hostname, parts.port, path, idle, timeout)
        results.append((status, time.perf_counter() - due))

    for i in range(total):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    by = {}
    for status, latency in results:
        by.setdefault(str(status), []).append(latency)
    out = {
        "offered_rps": rate,
        "sent": total,
        "elapsed_s": round(elapsed, 2),
        "statuses": {
            k: {"count": len(v), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99), "max_ms": pct(v, 1.0)}
            for k, v in sorted(by.items())
        },
    }
    for conn in idle:
        conn[1].close()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
