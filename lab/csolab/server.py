"""Run moto's server with the lab's extensions and middleware: ``python -m csolab.server``."""

import argparse
import signal
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from csolab import moto_ext
from csolab.labapi import LabMiddleware


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    moto_ext.install()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = LabMiddleware(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
