"""The lab answers stock amazon.aws modules through the environment alone."""

import pytest

pytestmark = pytest.mark.lab


def test_seeded_database_visible_to_amazon_aws(aws_lab, run_playbook):
    run = run_playbook(
        """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the seeded instance
      amazon.aws.rds_instance_info:
        db_instance_identifier: cso-lab-db
      register: info
"""
    )
    assert run.returncode == 0, run
    instance = run.result("Read the seeded instance")["instances"][0]
    assert instance["engine_version"] == "8.0.42"
    assert instance["vpc_security_groups"][0]["vpc_security_group_id"] == aws_lab.state["seed"]["network"]["core_security_group_id"]
