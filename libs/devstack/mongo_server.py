"""Run the local MongoDB-protocol server (SecantusDB) in the foreground until SIGTERM.

`python -m libs.devstack.mongo_server --port P --data-dir D`. SecantusDB is
started through its Python API, as its authors recommend, from its own
working directory; SIGTERM closes WiredTiger cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from secantus import SecantusDBServer

from libs.devstack.ttl_monitor import TtlMonitor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    # An idle transaction is aborted after this long (a killed client's locks are released then).
    parser.add_argument("--transaction-lifetime-s", type=float, default=60.0)
    # How often expired documents of TTL indexes are removed: MongoDB's TTL monitor runs every 60 s
    # (ttlMonitorSleepSecs). A 1 s sweep walked every TTL collection each second (idle CPU 5 % -> 42 % after 1,755
    # logins); the platform never relies on the sweep: an expired document is refused by its own expiry check.
    # libs/devstack/ttl_monitor.py does it, through the indexes; SecantusDB's own sweep (every document decoded
    # under the global lock) stays off.
    parser.add_argument("--ttl-sweep-s", type=float, default=60.0)
    args = parser.parse_args()

    server = SecantusDBServer(
        args.host,
        args.port,
        args.data_dir,
        ttl_sweep_seconds=0,
        enable_test_commands=False,
        transaction_lifetime_seconds=args.transaction_lifetime_s,
    )
    stop_requested = threading.Event()

    def request_stop(signum, _frame):
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    print(f"mongodb-protocol server listening on {args.host}:{args.port}", flush=True)
    monitor = TtlMonitor(f"mongodb://{args.host}:{args.port}/?retryWrites=false", args.ttl_sweep_s)
    monitor.start()
    stop_requested.wait()
    monitor.stop()
    server.stop()
    print("mongodb-protocol server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
