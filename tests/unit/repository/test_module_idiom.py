"""Every module and module_util uses the one client idiom (docs/development.md, "Conventions"):

* a client is made with ``module.client(service, retry_decorator=...)`` (``common.aws_client``);
* no boto3/botocore session or client is made by hand;
* every call of an AWS operation on a client passes ``aws_retry=True``;
* a paginator is read inside a function decorated with ``AWSRetry`` (the wrapper does not retry it).

The check parses the sources (AST); the self-tests at the end show it finds each violation.
"""

import ast
from pathlib import Path

import pytest
from botocore import xform_name
from botocore.loaders import create_loader

ROOT = Path(__file__).resolve().parents[3]
SOURCES = sorted((ROOT / "plugins" / "modules").glob("*.py")) + sorted((ROOT / "plugins" / "module_utils").glob("*.py"))
SERVICES = ("rds", "kms", "ec2", "iam", "sns", "cloudwatch", "sts")
FORBIDDEN_CALLS = {"Session", "get_session"}


def _operations():
    loader = create_loader()
    names = set()
    for service in SERVICES:
        names.update(xform_name(op) for op in loader.load_service_model(service, "service-2")["operations"])
    return names


OPERATIONS = _operations()


def _imported_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _decorated_with_retry(function):
    return any("retry" in ast.unparse(decorator).lower() for decorator in function.decorator_list)


def violations(source, filename="<source>"):
    """Messages for every place in ``source`` that breaks the idiom."""
    tree = ast.parse(source, filename)
    imported = _imported_names(tree)
    found = []

    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(name == "boto3" or name.startswith("boto3.") or name == "botocore.session" for name in modules):
                found.append(f"{filename}:{node.lineno}: imports {', '.join(modules)} (make clients with module.client)")
        if isinstance(node, ast.Call):
            check_call(node, function)
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    def check_call(call, function):
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        keywords = {keyword.arg: keyword.value for keyword in call.keywords}
        where = f"{filename}:{call.lineno}"
        if name in FORBIDDEN_CALLS:
            found.append(f"{where}: {ast.unparse(func)}() makes a session by hand")
        if not isinstance(func, ast.Attribute):
            return
        receiver = func.value.id if isinstance(func.value, ast.Name) else None
        if receiver in ("boto3", "botocore"):
            found.append(f"{where}: {ast.unparse(func)}() bypasses module.client")
        if name == "client" and receiver not in ("boto3",) and "retry_decorator" not in keywords:
            found.append(f"{where}: {ast.unparse(func)}() without retry_decorator")
        if name == "get_paginator" and not (function and _decorated_with_retry(function)):
            found.append(f"{where}: paginator read outside a function decorated with AWSRetry")
        if name in OPERATIONS and receiver not in imported:
            retry = keywords.get("aws_retry")
            if not (isinstance(retry, ast.Constant) and retry.value is True):
                found.append(f"{where}: {ast.unparse(func)}() without aws_retry=True")

    visit(tree, None)
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_source_follows_the_client_idiom(path):
    assert violations(path.read_text(), str(path.relative_to(ROOT))) == []


def test_the_modules_are_all_checked():
    names = {path.name for path in SOURCES}
    assert {"rds_alarm_set.py", "rds_hardened_instance.py", "rds_backup_replication.py",
            "rds_restore_verification.py", "common.py"} <= names


@pytest.mark.parametrize("source, expected", [
    ("rds = module.client('rds')\n", "without retry_decorator"),
    ("import boto3\n", "imports boto3"),
    ("import botocore.session\ns = botocore.session.get_session()\n", "makes a session by hand"),
    ("from boto3.session import Session\n", "imports boto3.session"),
    ("def f(rds):\n    rds.modify_db_instance(DBInstanceIdentifier='x')\n", "without aws_retry=True"),
    ("def f(sns):\n    sns.create_topic(Name='x', aws_retry=False)\n", "without aws_retry=True"),
    ("def f(kms):\n    return kms.get_key_policy(KeyId='k', PolicyName='default')\n", "without aws_retry=True"),
    ("def f(rds):\n    return rds.get_paginator('describe_db_instances').paginate()\n", "paginator read outside"),
])
def test_the_check_finds_each_violation(source, expected):
    found = violations(source)
    assert any(expected in message for message in found), found


@pytest.mark.parametrize("source", [
    "rds = module.client('rds', retry_decorator=AWSRetry.jittered_backoff())\n",
    "def f(rds):\n    rds.modify_db_instance(DBInstanceIdentifier='x', aws_retry=True)\n",
    "@AWSRetry.jittered_backoff()\ndef f(rds):\n    return rds.get_paginator('describe_db_instances').paginate()\n",
    "from x import alarm_aws\nalarm_aws.describe_event_subscriptions(rds)\n",  # our function, not the client's
])
def test_the_idiom_itself_passes(source):
    assert violations(source) == []


@pytest.mark.parametrize("path", sorted((ROOT / "plugins" / "module_utils").glob("*.py")), ids=lambda path: path.name)
def test_module_utils_stay_small(path):
    """Issue 13: a module_util holds one concern (model, pure plan or AWS calls), at most 400 lines."""
    assert len(path.read_text().splitlines()) <= 400
