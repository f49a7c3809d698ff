"""An OTLP/HTTP collector stand-in for ``bench/run.py --tracing``: answers every export 200 with
an empty ``ExportTraceServiceResponse`` without decoding it (the gateway's cost is measured, not
a collector's), and counts exports and bytes (printed when it stops)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    exports = 0
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        size = len(self.rfile.read(int(self.headers["content-length"])))
        with Handler.lock:
            Handler.exports += 1
            Handler.received += size
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        print(f"{Handler.exports} exports, {Handler.received} bytes", file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
