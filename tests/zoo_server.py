"""A real HTTP server on 127.0.0.1 that serves a zoo directory, with switchable misbehaviour.

``server.faults[path] = kind`` for one file: ``tamper`` (one byte flipped), ``truncate_once`` (the
first response promises the whole file and stops halfway), ``short`` (a complete response of half the
file), ``oversize`` (the file plus extra bytes), ``error_once`` (HTTP 500, then normal), ``missing`` (404).
Range requests are honoured, as a resuming client needs. Every request is recorded.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ZooServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.lstrip("/")
                server.requests.append((path, self.headers.get("Range")))
                fault = server.faults.get(path)
                file = server.root / path
                if fault == "missing" or not file.is_file():
                    self.send_error(404)
                    return
                if fault == "error_once":
                    server.faults.pop(path)
                    self.send_error(500)
                    return
                data = file.read_bytes()
                if fault == "tamper":
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                elif fault == "short":
                    data = data[: len(data) // 2]
                elif fault == "oversize":
                    data = data + b"\0" * 4096
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
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
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
