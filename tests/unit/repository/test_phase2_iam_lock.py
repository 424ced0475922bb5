"""Phase 2's opt-in step lock_password_users without a lab: where it sits among the steps, when it runs,
that it refuses unless this run proved every Keystone and CSO host on IAM, which accounts it locks or
unlocks (MySQL 8.0's and MariaDB's SHOW CREATE USER), that it changes nothing in check mode and hides the
admin password, that rollback_phase2.yml unlocks before any host play, and whom phase 1's TLS check logs
in as while the password users are locked. Expressions are evaluated with Ansible's own templating (its
filters and tests), on the YAML of the playbooks. The host-lab test runs the step itself
(tests/integration/test_phase2.py).
"""

import pathlib

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
PHASE2 = REPO_ROOT / "playbooks" / "phase2.yml"
ROLLBACK = REPO_ROOT / "playbooks" / "rollback_phase2.yml"
PASSWORD_USERS = REPO_ROOT / "playbooks" / "tasks" / "phase2_password_users.yml"
STEP = "lock_password_users"
GROUPS = {"keystone": ["keystone-1", "keystone-2"], "cso": ["cso-1"], "rds": ["cso-lab-db"]}
PROVEN = {"auth": "iam", "tls_verified": True, "changed": True}


def _plays(path):
    return yaml.safe_load(path.read_text())


def _tasks(play):
    for task in play.get("tasks", []):
        yield from task.get("block", [task])


def _task(tasks, name):
    return next(task for task in tasks if task["name"] == name)


def _trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


def _render(template, variables):
    """``template`` as Ansible renders it, with ``variables`` (templates among them resolved lazily)."""
    return Templar(loader=DataLoader(), variables=_trusted(variables)).template(_trusted(template))


def _condition(expression, variables):
    return _render("{{ " + expression.strip() + " }}", variables)


def _lock_play():
    return next(play for play in _plays(PHASE2) if play["vars"]["__phase2_step"] == STEP)


def test_the_lock_step_comes_after_every_hosts_move_and_before_monitoring_and_verify():
    steps = yaml.safe_load((REPO_ROOT / "playbooks/vars/phase2_steps.yml").read_text())["__phase2_steps"]
    assert steps.index(STEP) == steps.index("read_split") + 1 and steps.index(STEP) == steps.index("monitoring") - 1
    plays = _plays(PHASE2)
    index = plays.index(_lock_play())
    moves = [i for i, play in enumerate(plays) if {"keystone_db", "cso_db"} & {
        task["ansible.builtin.include_role"]["name"].split(".")[-1] for task in _tasks(play) if "ansible.builtin.include_role" in task}]
    verify = [i for i, play in enumerate(plays) if play["vars"]["__phase2_step"] == "verify"]
    assert moves and max(moves) < index < min(verify), (moves, index, verify)
    play = _lock_play()
    assert play["hosts"] == "{{ phase1_db_group | default('rds') }}" and play["vars"]["__phase2_disruptive"] is True
    spec = yaml.safe_load((REPO_ROOT / "roles/phase2/meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert spec["phase2_iam_lock_password_users"]["default"] is False and spec["phase2_iam_lock_password_users"]["type"] == "bool"
    defaults = yaml.safe_load((REPO_ROOT / "roles/phase2/defaults/main.yml").read_text())
    assert defaults["phase2_iam_lock_password_users"] is False


@pytest.mark.parametrize("iam, lock, stopped, closed, skipped", [
    (True, True, False, False, False),
    (True, False, False, False, True),
    (False, True, False, False, True),
    (True, True, True, False, True),
    (True, True, False, True, True),
])
def test_the_lock_step_runs_only_with_phase2_iam_and_the_lock_inside_the_window(iam, lock, stopped, closed, skipped):
    skip = _task(_lock_play()["tasks"], "Skip this step (phase2_stop_after, outside the window, or no lock wanted)")
    assert skip["ansible.builtin.meta"] == "end_play"
    assert _condition(skip["when"], dict(phase2_iam=iam, phase2_iam_lock_password_users=lock, __phase2_stopped_before=stopped,
                                         __phase2_window_closed=closed)) is skipped


def _not_on_iam(hostvars):
    play = _lock_play()
    refusal = _task(play["tasks"], "Refuse to lock unless this run proved every Keystone and CSO host on IAM")
    assert refusal["ansible.builtin.assert"]["that"] == "__phase2_hosts_not_on_iam | length == 0"
    variables = dict(play["vars"], groups=GROUPS, hostvars={host: hostvars.get(host, {}) for host in
                                                            GROUPS["keystone"] + GROUPS["cso"] + GROUPS["rds"]})
    return _render("{{ __phase2_hosts_not_on_iam }}", variables)


def test_the_lock_step_proceeds_when_this_run_proved_every_host_on_iam():
    assert _not_on_iam({"keystone-1": {"phase2_iam_report": PROVEN}, "keystone-2": {"phase2_iam_report": PROVEN},
                        "cso-1": {"phase2_read_split_report": PROVEN}}) == []


@pytest.mark.parametrize("unproven, hostvars", [
    (["keystone-2"], {"keystone-1": {"phase2_iam_report": PROVEN}, "cso-1": {"phase2_read_split_report": PROVEN}}),  # --limit
    (["cso-1"], {"keystone-1": {"phase2_iam_report": PROVEN}, "keystone-2": {"phase2_iam_report": PROVEN},
                 "cso-1": {"phase2_read_split_report": dict(PROVEN, auth="password")}}),
    (["keystone-1"], {"keystone-1": {"phase2_iam_report": dict(PROVEN, tls_verified=False)},
                      "keystone-2": {"phase2_iam_report": PROVEN}, "cso-1": {"phase2_read_split_report": PROVEN}}),
    # the Keystone result on a CSO host proves nothing for CSO
    (["cso-1"], {"keystone-1": {"phase2_iam_report": PROVEN}, "keystone-2": {"phase2_iam_report": PROVEN},
                 "cso-1": {"phase2_iam_report": PROVEN}}),
    (["keystone-1", "keystone-2", "cso-1"], {}),
])
def test_the_lock_step_refuses_and_names_each_host_this_run_did_not_prove_on_iam(unproven, hostvars):
    assert _not_on_iam(hostvars) == unproven


def test_the_lock_step_checks_before_it_locks_and_locks_with_the_shared_task_file():
    tasks = _lock_play()["tasks"]
    names = [task["name"] for task in tasks]
    refusal = names.index("Refuse to lock unless this run proved every Keystone and CSO host on IAM")
    lock = next(i for i, task in enumerate(tasks) if "ansible.builtin.include_tasks" in task)
    assert refusal < lock
    assert tasks[lock]["ansible.builtin.include_tasks"] == "tasks/phase2_password_users.yml"
    assert tasks[lock]["vars"]["__phase2_password_users_lock"] is True


# --- the shared task file: which accounts change ---------------------------------------------------

MYSQL_UNLOCKED = ("CREATE USER `{u}`@`{h}` IDENTIFIED WITH 'mysql_native_password' AS '*0A' REQUIRE SSL "
                  "PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK PASSWORD HISTORY DEFAULT")
MYSQL_LOCKED = MYSQL_UNLOCKED.replace("ACCOUNT UNLOCK", "ACCOUNT LOCK")
MARIADB_UNLOCKED = "CREATE USER `{u}`@`{h}` IDENTIFIED BY PASSWORD '*0A'"
MARIADB_LOCKED = MARIADB_UNLOCKED + " ACCOUNT LOCK"


def _decide(accounts, lock, names=("keystone", "ssp_user")):
    """The result of "Decide which accounts change" for ``accounts`` [(user, host, SHOW CREATE USER)]."""
    tasks = yaml.safe_load(PASSWORD_USERS.read_text())
    decide = _task(tasks, "Decide which accounts change")
    read = {"query_result": [[{"user": user, "host": host} for user, host, _ in accounts], []]}
    state = {"results": [{"query_result": [[{f"CREATE USER for {user}@{host}": statement.format(u=user, h=host)}]]}
                         for user, host, statement in accounts]}
    variables = dict(decide["vars"], __phase2_password_users_read=read, __phase2_password_users_state=state,
                     __phase2_password_users_lock=lock, phase2_iam_keystone_password_user=names[0],
                     phase2_iam_cso_password_user=names[1])
    return _render(decide["ansible.builtin.set_fact"]["__phase2_password_users_result"], variables)


@pytest.mark.parametrize("unlocked, locked", [(MYSQL_UNLOCKED, MYSQL_LOCKED), (MARIADB_UNLOCKED, MARIADB_LOCKED)],
                         ids=["mysql", "mariadb"])
def test_locking_changes_only_the_unlocked_accounts_and_unlocking_only_the_locked_ones(unlocked, locked):
    accounts = [("keystone", "%", locked), ("ssp_user", "%", unlocked), ("ssp_user", "10.0.%", unlocked)]
    to_lock = _decide(accounts, lock=True)
    assert to_lock["accounts"] == ["keystone@%", "ssp_user@%", "ssp_user@10.0.%"] and to_lock["missing"] == []
    assert to_lock["to_change"] == ["ssp_user@%", "ssp_user@10.0.%"]
    assert _decide(accounts, lock=False)["to_change"] == ["keystone@%"]
    # the second run: nothing left to change either way round
    assert _decide([(user, host, locked) for user, host, _ in accounts], lock=True)["to_change"] == []
    assert _decide([(user, host, unlocked) for user, host, _ in accounts], lock=False)["to_change"] == []


def test_a_password_user_without_an_account_is_refused_before_any_change():
    tasks = yaml.safe_load(PASSWORD_USERS.read_text())
    result = _decide([("keystone", "%", MYSQL_UNLOCKED)], lock=True, names=("keystone", "ssp_usr"))
    assert result["missing"] == ["ssp_usr"]
    names = [task["name"] for task in tasks]
    refusal = names.index("Refuse when a password user has no account (a misspelt name would leave the real one unlocked)")
    assert refusal < names.index("Lock (or, in the rollback, unlock) the password users' accounts")
    assert _task(tasks, names[refusal])["ansible.builtin.assert"]["that"] == "__phase2_password_users_result.missing | length == 0"


def test_the_sql_reads_even_in_check_mode_alters_only_outside_it_and_hides_the_admin_password():
    tasks = yaml.safe_load(PASSWORD_USERS.read_text())
    sql = [task for task in _tasks({"tasks": tasks}) if "community.mysql.mysql_query" in task]
    # mysql_user's `locked` would also reset the account's TLS requirement (REQUIRE NONE without tls_requires)
    assert len(sql) == 3 and not [task for task in _tasks({"tasks": tasks}) if "community.mysql.mysql_user" in task]
    for task in sql:
        assert task["no_log"] is True, task["name"]
        assert task["delegate_to"] == "{{ phase2_iam_sql_host }}" and task["vars"]["ansible_python_interpreter"] == "{{ phase2_iam_sql_python }}"
        module = task["community.mysql.mysql_query"]
        assert (module["login_user"], module["ca_cert"], module["check_hostname"]) == (
            "{{ phase2_iam_admin_user }}", "{{ phase2_iam_sql_ca_file }}", True)
    *reads, alter = sql
    assert all(task["check_mode"] is False and task["changed_when"] is False for task in reads)
    assert alter["when"] == "not ansible_check_mode" and alter["loop"] == "{{ __phase2_password_users_result.to_change }}"
    for lock, statement in ((True, "ALTER USER %s@%s ACCOUNT LOCK"), (False, "ALTER USER %s@%s ACCOUNT UNLOCK")):
        assert _render(alter["community.mysql.mysql_query"]["query"], {"__phase2_password_users_lock": lock}) == statement
    assert _render(alter["community.mysql.mysql_query"]["positional_args"], {"item": "ssp_user@10.0.%"}) == ["ssp_user", "10.0.%"]


@pytest.mark.parametrize("lock, sessions, waits", [(True, [{"user": "keystone", "client": "10.89.10.11:40000"}], False),
                                                   (True, [], True), (False, [{"user": "keystone", "client": "x"}], True)])
def test_locking_waits_for_the_password_users_sessions_to_close_and_refuses_while_one_stays(lock, sessions, waits):
    tasks = yaml.safe_load(PASSWORD_USERS.read_text())
    read = _task(tasks[0]["block"], "Read the password users' accounts and open sessions")
    result = {"query_result": [[], sessions], "failed": False}
    assert _condition(read["until"], {"__phase2_password_users_read": result, "__phase2_password_users_lock": lock}) is waits
    refusal = _task(tasks[0]["rescue"], "Refuse to lock a password user that something still uses")
    variables = {"__phase2_password_users_read": result, "__phase2_password_users_lock": lock}
    assert all(_condition(condition, variables) for condition in refusal["when"]) is (lock and bool(sessions))


# --- the rollback unlocks first ------------------------------------------------------------------

def test_the_rollback_unlocks_the_password_users_before_any_host_play():
    plays = _plays(ROLLBACK)
    unlock = plays[0]
    assert unlock["hosts"] == "{{ phase1_db_group | default('rds') }}" and unlock["any_errors_fatal"] is True
    block = next(task for task in unlock["tasks"] if "block" in task)
    assert block["when"] == "phase2_iam | bool or phase2_iam_lock_password_users | bool"
    include = next(task for task in block["block"] if "ansible.builtin.include_tasks" in task)
    assert include["ansible.builtin.include_tasks"] == "tasks/phase2_password_users.yml"
    assert include["vars"]["__phase2_password_users_lock"] is False
    host_plays = [play for play in plays if play["hosts"] != unlock["hosts"]]
    assert plays.index(host_plays[0]) == 1
    # the first two host plays move the services back; each refuses unless the unlock ran in this run
    for play in plays[1:3]:
        names = [task["name"] for task in play["tasks"]]
        gate = names.index("Stop unless the password users were unlocked in this run")
        move = next(i for i, task in enumerate(play["tasks"]) if "ansible.builtin.include_role" in task)
        assert gate < move, play["name"]


@pytest.mark.parametrize("iam, lock, unlocked, moves", [
    (True, False, True, True), (False, True, True, True), (True, True, False, False), (False, False, False, True)])
def test_a_host_moves_back_only_after_the_unlock_ran_when_it_may_be_needed(iam, lock, unlocked, moves):
    play = _plays(ROLLBACK)[1]
    gate = _task(play["tasks"], "Stop unless the password users were unlocked in this run")["ansible.builtin.assert"]["that"]
    db = {"__rollback_phase2_unlocked": True} if unlocked else {}
    assert _condition(gate, dict(phase2_iam=iam, phase2_iam_lock_password_users=lock, groups=GROUPS,
                                 hostvars={"cso-lab-db": db})) is moves


# --- phase 1's TLS check while the password users are locked -------------------------------------

@pytest.mark.parametrize("path", ["playbooks/tasks/phase1_plaintext_refused.yml",
                                  "playbooks/tasks/phase1_plaintext_accepted.yml"])
@pytest.mark.parametrize("auth, lock, expected", [
    ("iam", True, ("admin", "admin-secret")), ("iam", False, ("keystone", "keystone-secret")),
    ("password", True, ("keystone_svc", "keystone-secret")), ("password", False, ("keystone_svc", "keystone-secret"))])
def test_the_tls_check_logs_in_as_the_admin_user_while_the_password_users_are_locked(path, auth, lock, expected):
    tasks = yaml.safe_load((REPO_ROOT / path).read_text())
    check = next(task for task in tasks if "block" in task)["block"][1]
    assert check["no_log"] is True
    variables = dict(check["vars"], keystone_db_auth=auth, keystone_db_user="keystone_iam" if auth == "iam" else "keystone_svc",
                     phase2_iam_keystone_password_user="keystone", phase2_iam_lock_password_users=lock,
                     phase2_iam_admin_user="admin", phase2_iam_admin_password="admin-secret", keystone_db_password="keystone-secret")
    assert (_render("{{ __phase1_check_user }}", variables), _render("{{ __phase1_check_password }}", variables)) == expected
    assert "'password': __phase1_check_password" in check["ansible.builtin.command"]["stdin"]
