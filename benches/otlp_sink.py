#!/usr/bin/env python3
"""otlp_sink.py - the cheapest OTLP/HTTP trace receiver, for benchmarks with traces on:
answers every POST /v1/traces with 200 and an empty ExportTraceServiceResponse (zero bytes
of protobuf), counting what it received. Not a collector: it keeps nothing.

Usage: benches/otlp_sink.py [--port 4318]   (then OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318)
"""
import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        received["requests"] += 1
        received["bytes"] += length
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Sink)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print(f"received {received['requests']} exports, {received['bytes']} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
