"""``python -m csolab {up,down,status,reset,env}``: the lab's command line."""

import argparse
import json
import sys

from csolab import aws


def _print(payload):
    print(json.dumps(payload, indent=2, sort_keys=True))


def cmd_up(_args):
    state, started = aws.up()
    print(f"AWS lab {'started' if started else 'already up'} at {state['endpoint_url']} (region {state['region']})")


def cmd_down(_args):
    aws.down()
    print("AWS lab down")


def cmd_status(_args):
    report = aws.status()
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
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
