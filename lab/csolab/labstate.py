"""The AWS lab's state file (``aws.json``) and its shell twin (``aws.env``).

Both ``csolab.aws`` (which starts the server and writes the state) and ``csolab.client`` (which
reads it, and re-saves the seeded ids after a reset) depend on this module, not on each other.
"""

import json

from csolab import paths


def load_state():
    try:
        return json.loads(paths.AWS_STATE_FILE.read_text())
    except FileNotFoundError:
        raise RuntimeError("the AWS lab is not up: run `make lab-up`") from None


def env_lines(state):
    return [
        f"export AWS_ENDPOINT_URL={state['endpoint_url']}",
        f"export AWS_REGION={state['region']}",
        f"export AWS_DEFAULT_REGION={state['region']}",
        f"export AWS_ACCESS_KEY_ID={state['aws_access_key_id']}",
        f"export AWS_SECRET_ACCESS_KEY={state['aws_secret_access_key']}",
    ]


def write_state(state):
    paths.AWS_STATE_FILE.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    paths.AWS_ENV_FILE.write_text("\n".join(env_lines(state)) + "\n")


def save_if_current(state):
    """Re-save ``state`` when it is the lab ``aws.json`` describes (same endpoint)."""
    try:
        on_disk = json.loads(paths.AWS_STATE_FILE.read_text())
    except FileNotFoundError:
        return
    if on_disk.get("endpoint_url") == state["endpoint_url"]:
        write_state(state)
