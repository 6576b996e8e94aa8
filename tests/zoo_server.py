"""A real HTTP server on 127.0.0.1 that serves a zoo directory, with switchable misbehaviour.

``server.faults[path] = kind`` for one file:

- ``tamper`` (one byte flipped), ``short`` (a complete response of half the file), ``oversize`` (the
  file plus extra bytes), ``missing`` (404), ``error_once`` (HTTP 500, then normal);
- ``truncate_once`` (the first response promises the whole file and stops halfway);
- ``trickle`` (one byte every 50 ms), ``stall`` (half the body, then silence), ``hang`` (no answer at all),
  ``slow_headers`` (a header line that never ends), ``endless_trailers`` (chunked: the body, then trailers forever);
- ``ignore_range`` (always 200 with the whole file), ``range_416`` (416 to every Range request),
  ``wrong_range`` (206 from another offset than asked);
- ``redirect:<url>`` (302 to ``url``).

Range requests are honoured otherwise, as a resuming client needs. Every request is recorded.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ZooServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.lstrip("/")
                server.requests.append((path, self.headers.get("Range")))
                fault = server.faults.get(path, "")
                file = server.root / path
                if fault == "hang":
                    server.closing.wait(60)
                    return
                if fault == "slow_headers":  # every read answered in time, the headers never end
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while not server.closing.wait(0.1):
                        self.wfile.write(b"a")
                        self.wfile.flush()
                    return
                if fault == "endless_trailers" and file.is_file():  # the body, then trailer lines forever
                    body = file.read_bytes()
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n")
                    while not server.closing.wait(0.1):
                        self.wfile.write(b"X-More: 1\r\n")
                        self.wfile.flush()
                    return
                if fault.startswith("redirect:"):
                    self.send_response(302)
                    self.send_header("Location", fault.partition(":")[2])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "missing" or not file.is_file():
                    self.send_error(404)
                    return
                if fault == "error_once":
                    server.faults.pop(path)
                    self.send_error(500)
                    return
                asked = self.headers.get("Range", "")
                if fault == "range_416" and asked:
                    self.send_error(416)
                    return
                data = file.read_bytes()
                if fault == "tamper":
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                elif fault == "short":
                    data = data[: len(data) // 2]
                elif fault == "oversize":
                    data = data + b"\0" * 4096
                start = 0
                if asked.startswith("bytes=") and fault != "ignore_range":
                    start = int(asked[6:].split("-")[0])
                    if fault == "wrong_range":
                        start = max(0, start - 10)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "truncate_once":
                    server.faults.pop(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                if fault == "stall":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    server.closing.wait(60)
                    return
                if fault == "trickle":
                    for i in range(len(body)):
                        if server.closing.wait(0.05):
                            return
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client that gave up is not news
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.closing.set()
        time.sleep(0.01)
        self.httpd.shutdown()
        self.httpd.server_close()


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """qatzoo's command line in this process (arguments as strings): its exit code, stdout and stderr."""
    from qatzoo.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The only line of ``err``, which must be one ``error: ...`` line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]
