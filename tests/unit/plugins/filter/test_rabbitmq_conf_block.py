"""rabbitmq_conf_block owns exactly its keys in rabbitmq.conf and leaves every other line alone."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cso.rds_hardening.plugins.filter.rabbitmq_conf_block import rabbitmq_conf_block

MARKER = "cso.rds_hardening.rabbitmq_tls"
SETTINGS = {"listeners.ssl.default": 5671, "ssl_options.verify": "verify_peer",
            "ssl_options.fail_if_no_peer_cert": True, "listeners.tcp": "none"}
PREFIXES = ["ssl_options", "listeners.ssl", "listeners.tcp"]


def block(text):
    lines = text.splitlines()
    return lines[lines.index(f"# BEGIN {MARKER}"):lines.index(f"# END {MARKER}") + 1]


def test_appends_block_and_keeps_other_lines():
    current = "# site settings\nlog.console.level = info\n\n\n"
    result = rabbitmq_conf_block(current, SETTINGS, PREFIXES)
    assert result.startswith("# site settings\nlog.console.level = info\n\n# BEGIN ")
    assert block(result)[1:-1] == ["listeners.ssl.default = 5671", "ssl_options.verify = verify_peer",
                                   "ssl_options.fail_if_no_peer_cert = true", "listeners.tcp = none"]
    assert result.endswith(f"# END {MARKER}\n")


def test_second_pass_is_identical():
    once = rabbitmq_conf_block("listeners.tcp.default = 5672\nvm_memory_high_watermark.relative = 0.6\n",
                               SETTINGS, PREFIXES)
    assert rabbitmq_conf_block(once, SETTINGS, PREFIXES) == once


def test_drops_owned_keys_outside_the_block_only():
    current = ("listeners.tcp.default = 5672\n  ssl_options.verify = verify_none\nssl_options_x = 1\n"
               "# ssl_options.verify = verify_none (a comment stays)\nheartbeat = 30\n")
    result = rabbitmq_conf_block(current, SETTINGS, PREFIXES)
    outside = [line for line in result.splitlines() if line not in block(result)]
    assert outside == ["ssl_options_x = 1", "# ssl_options.verify = verify_none (a comment stays)", "heartbeat = 30", ""]


def test_replaces_block_in_place_and_forgets_keys_no_longer_set():
    first = rabbitmq_conf_block("a = 1\n", SETTINGS, PREFIXES) + "z = 26\n"
    second = rabbitmq_conf_block(first, {"listeners.ssl.default": 5671}, ["listeners.ssl"])
    assert second.splitlines() == ["a = 1", "", f"# BEGIN {MARKER}", "listeners.ssl.default = 5671",
                                   f"# END {MARKER}", "z = 26"]


def test_unowned_prefix_is_kept():
    result = rabbitmq_conf_block("listeners.tcp.default = 5672\n", {"listeners.ssl.default": 5671}, ["listeners.ssl"])
    assert "listeners.tcp.default = 5672" in result.splitlines()


def test_empty_settings_remove_the_block():
    with_block = rabbitmq_conf_block("a = 1\n", SETTINGS, PREFIXES)
    assert rabbitmq_conf_block(with_block, {}, []) == "a = 1\n\n"


def test_empty_file():
    assert rabbitmq_conf_block("", {"heartbeat": 60}).splitlines() == [f"# BEGIN {MARKER}", "heartbeat = 60",
                                                                       f"# END {MARKER}"]


def test_unterminated_block_is_an_error():
    with pytest.raises(AnsibleFilterError, match="no matching"):
        rabbitmq_conf_block(f"# BEGIN {MARKER}\nheartbeat = 60\n", {"heartbeat": 60})


def test_settings_must_be_a_mapping():
    with pytest.raises(AnsibleFilterError, match="mapping"):
        rabbitmq_conf_block("", [("heartbeat", 60)])
