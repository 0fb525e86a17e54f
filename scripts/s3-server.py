"""moto's S3 server with atomic conditional writes, for the ctrflow test suite.

`moto_server` handles each request on its own thread and checks `If-Match` / `If-None-Match`
before it stores the object, without a lock between the check and the write (moto 5.2.5,
`S3Response.put_object`). Two conditional PUTs against the same version can therefore both
succeed, which real S3 never allows; ctrflow's pointer swap relies on exactly that guarantee and
its conformance test (`pointer_concurrent_counter`) caught moto losing an update in CI.

This launcher runs the same moto application with the same request handler and serialises every
request that changes state (anything but GET, HEAD and OPTIONS), so a conditional write's check
and its store happen as one step, as they do in S3. Reads stay concurrent. moto keeps its objects
in memory, so a write holds the lock for well under a millisecond.

Usage: python s3-server.py [--host 127.0.0.1] [--port 5055] [--switch-interval SECONDS]
(`--switch-interval` lowers Python's thread switch interval; only for reproducing the race.)
"""

import argparse
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SerialisedWrites:
    """WSGI middleware: one state-changing request at a time, reads unrestricted."""

    def __init__(self, app, serialise=True):
        self.app = app
        self.serialise = serialise
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not self.serialise or environ.get("REQUEST_METHOD") in READ_ONLY_METHODS:
            return self.app(environ, start_response)
        with self.lock:
            # moto builds the whole response inside the call; materialise it under the lock
            # so nothing of the write runs after the lock is released.
            return list(self.app(environ, start_response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval value (seconds); small values make races likelier",
    )
    parser.add_argument(
        "--unserialised",
        action="store_true",
        help="serve like plain moto_server (for demonstrating the race only)",
    )
    args = parser.parse_args()
    # moto reads its own port from here (as moto_server sets it) for URLs it hands out.
    os.environ.setdefault("MOTO_PORT", str(args.port))

    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))

    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerialisedWrites(app, serialise=not args.unserialised),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
