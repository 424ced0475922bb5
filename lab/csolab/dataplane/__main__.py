"""``python -m csolab.dataplane {run,start,stop,status}``: the data-plane bridge."""

import argparse
import json
import logging
import sys

from csolab import netns, paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="csolab.dataplane", description=__doc__)
    parser.add_argument("command", choices=["run", "start", "stop", "status"])
    parser.add_argument("--state-dir", default=str(paths.LAB_DIR))
    parser.add_argument("--netns", default=netns.NAME)
    parser.add_argument("--aws-state", default=str(paths.AWS_STATE_FILE))
    args = parser.parse_args(argv)
    from csolab import dataplane

    if args.command == "run":
        from csolab.dataplane.bridge import Bridge

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        Bridge(args.state_dir, args.netns, args.aws_state).run()
        return 0
    if args.command == "start":
        print(json.dumps(dataplane.start(args.state_dir, args.netns), indent=2))
    elif args.command == "stop":
        dataplane.stop(args.state_dir)
    else:
        report = dataplane.status(args.state_dir)
        print(json.dumps(report, indent=2))
        return 0 if report["bridge"] == "up" else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
