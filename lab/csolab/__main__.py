"""``python -m csolab {up [--hosts],down,status,reset,env}``: the lab's command line."""

import argparse
import json
import sys

from csolab import aws


def _print(payload):
    print(json.dumps(payload, indent=2, sort_keys=True))


def cmd_up(args):
    if args.hosts:
        from csolab import hosts

        timings = hosts.up()
        print(f"host lab up in {timings['total']}s: {json.dumps(timings)}")
        return
    state, started = aws.up()
    print(f"AWS lab {'started' if started else 'already up'} at {state['endpoint_url']} (region {state['region']})")


def cmd_down(_args):
    from csolab import hosts

    hosts.down()  # the host lab (if any) and the AWS lab, with whatever a killed run left
    print("lab down")


def cmd_status(_args):
    from csolab import hosts

    report = aws.status()
    report["hosts"] = hosts.status()
    _print(report)
    return 0 if report["aws"] == "up" else 3


def cmd_reset(_args):
    from csolab.client import LabClient

    _print(LabClient().reset())


def cmd_env(_args):
    from csolab import paths

    print(paths.AWS_ENV_FILE.read_text(), end="")


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "reset": cmd_reset, "env": cmd_env}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--hosts", action="store_true",
                        help="up: the full topology (data plane, Keystone/CSO/RabbitMQ hosts, load balancer)")
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
