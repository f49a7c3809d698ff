"""Open dashboards for the benchmark: N clients reading ``/v1/dashboard/events`` until killed.

Run as ``python bench/dashboards.py PORT N`` (``bench/run.py --dashboards N`` does it). Each
client is a thread with its own connection that reads the event stream as a browser would,
discarding it. Once every client has received its first snapshot the script prints
``connected N`` (flushed) so the caller knows the gateway is serving all of them; it then reads
until terminated. A stream that ends (the gateway drained) ends its thread.
"""

from __future__ import annotations

import http.client
import sys
import threading

HOST = "127.0.0.1"


def read_events(port: int, first_snapshot: threading.Barrier) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    connection.request("GET", "/v1/dashboard/events", headers={"Accept": "text/event-stream"})
    response = connection.getresponse()
    if response.status != 200:
        sys.exit(f"dashboard stream answered {response.status}")
    seen = b""
    while b"event: snapshot" not in seen:
        seen += response.read1(65536)
    first_snapshot.wait()
    while response.read1(65536):
        pass


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    ready = threading.Barrier(count + 1)
    for _ in range(count):
        threading.Thread(target=read_events, args=(port, ready), daemon=True).start()
    ready.wait(timeout=30)
    print(f"connected {count}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
