# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: rabbitmq_conf_block
short_description: Put a managed block of settings into a rabbitmq.conf text, keeping the rest
version_added: 0.1.0
description:
  - Returns the text of a C(rabbitmq.conf) (new-style, sysctl-like format) in which the settings the
    caller owns live in one block between C(# BEGIN <marker>) and C(# END <marker>) lines.
  - The block replaces the previous block with the same marker, in place; without one it is appended.
  - Lines outside the block that set an owned key are dropped, because RabbitMQ would otherwise
    see two values for one key. A key is owned when the block sets it or when it equals or starts
    with one of O(owned_prefixes) followed by a dot. Every other line (comments included) is kept as is.
  - An empty O(settings) removes the block.
options:
  _input:
    description: The current file content (an empty string when the file does not exist yet).
    type: str
    required: true
  settings:
    description:
      - Ordered mapping of key to value. Booleans are written as V(true)/V(false).
    type: dict
    required: true
  owned_prefixes:
    description:
      - Key families the caller owns completely, for example V(ssl_options) owns V(ssl_options.verify)
        and V(ssl_options.versions.1).
    type: list
    elements: str
    default: []
  marker:
    description: Text after C(# BEGIN)/C(# END) that identifies the block.
    type: str
    default: cso.rds_hardening.rabbitmq_tls
"""

EXAMPLES = r"""
- name: Compute the new rabbitmq.conf
  ansible.builtin.set_fact:
    new_conf: >-
      {{ current_conf | cso.rds_hardening.rabbitmq_conf_block(
           {'listeners.ssl.default': 5671, 'ssl_options.verify': 'verify_peer'},
           owned_prefixes=['ssl_options', 'listeners.ssl']) }}
"""

RETURN = r"""
_value:
  description: The new file content, ending with a newline.
  type: str
"""

import re

from ansible.errors import AnsibleFilterError

KEY_LINE = re.compile(r"^\s*([^\s=#]+)\s*=")


def _render_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_owned(key, owned_keys, owned_prefixes):
    return key in owned_keys or any(key == prefix or key.startswith(prefix + ".") for prefix in owned_prefixes)


def _block_lines(settings, marker):
    if not settings:
        return []
    body = [f"{key} = {_render_value(value)}" for key, value in settings.items()]
    return [f"# BEGIN {marker}", *body, f"# END {marker}"]


def rabbitmq_conf_block(current, settings, owned_prefixes=None, marker="cso.rds_hardening.rabbitmq_tls"):
    if not isinstance(settings, dict):
        raise AnsibleFilterError(f"rabbitmq_conf_block: settings must be a mapping, got {type(settings).__name__}")
    owned_prefixes = list(owned_prefixes or [])
    owned_keys = set(settings)
    begin, end = f"# BEGIN {marker}", f"# END {marker}"

    kept, block_at, inside = [], None, False
    for line in (current or "").splitlines():
        stripped = line.strip()
        if stripped == begin:
            inside = True
            block_at = len(kept) if block_at is None else block_at
            continue
        if inside:
            inside = stripped != end
            continue
        match = KEY_LINE.match(line)
        if match and _is_owned(match.group(1), owned_keys, owned_prefixes):
            continue
        kept.append(line)
    if inside:
        raise AnsibleFilterError(f"rabbitmq_conf_block: '{begin}' has no matching '{end}'; fix the file by hand")

    block = _block_lines(settings, marker)
    if block_at is None:
        while kept and not kept[-1].strip():
            kept.pop()
        lines = kept + ([""] if kept and block else []) + block
    else:
        lines = kept[:block_at] + block + kept[block_at:]
    return "\n".join(lines) + "\n" if lines else ""


class FilterModule:
    def filters(self):
        return {"rabbitmq_conf_block": rabbitmq_conf_block}
