"""``python scripts/local_feature_store.py --port P --data-dir DIR [--host H]``: serve until
SIGTERM/SIGINT, flushing the offline store on a timer and once more on the way out."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .models import FeatureStoreBackend
from .responses import App
from .server import Server

log = logging.getLogger("feature_store_emulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Local SageMaker Feature Store emulator")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", required=True, help="offline store root (s3://b/k -> "
                        "DIR/b/k)")
    parser.add_argument("--flush-interval", type=float, default=2.0,
                        help="seconds between offline-store flushes (<=0: only on demand)")
    parser.add_argument("--offline-delay-seconds", type=float, default=0.0,
                        help="seconds a row waits before a timer flush may deliver it to the "
                        "offline store (AWS: up to ~15 minutes; /_emulator/flush delivers "
                        "at once)")
    parser.add_argument("--describe-page-size", type=int, default=100,
                        help="FeatureDefinitions per DescribeFeatureGroup page")
    parser.add_argument("--sink", action="store_true",
                        help="validate every write as usual but store nothing (benchmarks: "
                        "the endpoint's own cost stays small and its memory flat)")
    parser.add_argument("--log-requests", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.describe_page_size < 1:
        parser.error("--describe-page-size must be >= 1")
    if args.offline_delay_seconds < 0:
        parser.error("--offline-delay-seconds must be >= 0")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[local-feature-store] %(message)s")

    os.makedirs(args.data_dir, exist_ok=True)
    backend = FeatureStoreBackend(args.data_dir, args.describe_page_size,
                                  args.offline_delay_seconds, args.sink)
    app = App(backend, log_requests=args.log_requests)
    server = Server((args.host, args.port), app)
    host, port = server.server_address[:2]
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     name="serve", daemon=True).start()

    def flusher():
        while not stop.wait(args.flush_interval):
            backend.flush(due_only=True)

    if args.flush_interval > 0:
        threading.Thread(target=flusher, name="flusher", daemon=True).start()

    url_host = f"[{host}]" if ":" in host else host
    # the line emulator_process.start waits for (DESIGN.md §4: a line containing "ready")
    print(f"local feature store ready on http://{url_host}:{port} (data dir "
          f"{os.path.abspath(args.data_dir)})", flush=True)
    while not stop.wait(0.5):
        pass
    app.closing = True
    server.shutdown()
    server.server_close()
    result = backend.flush()
    log.info("stopped; final flush wrote %s rows in %s files", result["rows"], result["files"])
    return 0
