"""``python -m csolab {up [--hosts],down,status,reset [--hosts],acquire,release,leftovers [--clear],env}``: the lab's command line.

``acquire --owner NAME`` / ``release --owner NAME`` share one running host lab between test layers
and Molecule scenarios: acquire reuses a running lab (reset to its seeded state) or brings one up;
release resets it, or takes it down when NAME brought it up.
"""

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


def cmd_reset(args):
    if args.hosts:
        from csolab import hosts

        timings = hosts.reset()
        print(f"host lab reset in {timings['total']}s: {json.dumps(timings)}")
        return
    from csolab.client import LabClient

    _print(LabClient().reset())


def _require_owner(args):
    if not args.owner:
        raise SystemExit(f"{args.command} needs --owner NAME (the same name for acquire and release)")
    return args.owner


def cmd_acquire(args):
    from csolab import hosts

    lease = hosts.acquire(_require_owner(args), hold_only=args.hold)
    how = "brought up" if lease["started"] else (f"reset ({lease['why']})" if lease["reset"] else "reused (pristine)")
    print(f"host lab {how} for {lease['owner']} in {lease['seconds']}s: {json.dumps(lease['timings'])}")


def cmd_release(args):
    from csolab import hosts

    outcome = hosts.release(_require_owner(args))
    print(f"host lab released by {outcome['owner']}: {outcome['action']} in {outcome['seconds']}s")


def cmd_env(_args):
    from csolab import paths

    print(paths.AWS_ENV_FILE.read_text(), end="")


def cmd_leftovers(args):
    from csolab import leftovers

    return leftovers.main(["--clear"] if args.clear else [])


COMMANDS = {"leftovers": cmd_leftovers, "up": cmd_up, "down": cmd_down, "status": cmd_status, "reset": cmd_reset, "env": cmd_env,
            "acquire": cmd_acquire, "release": cmd_release}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--hosts", action="store_true",
                        help="up: the full topology (data plane, Keystone/CSO/RabbitMQ hosts, load balancer); "
                             "reset: the running topology back to its seeded state")
    parser.add_argument("--owner", help="acquire/release: who holds the host lab (e.g. molecule-keystone_db)")
    parser.add_argument("--clear", action="store_true",
                        help="leftovers: take down the labs of other checkouts still running here")
    parser.add_argument("--hold", action="store_true",
                        help="acquire: only keep the lab up for later users (leaves it pristine for the first of them)")
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
