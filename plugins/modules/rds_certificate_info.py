#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_certificate_info
short_description: The RDS certificate authorities (CAs) of a region, with their thumbprints
version_added: 0.1.0
description:
  - Lists the CA certificates RDS offers in a region (C(DescribeCertificates)), or one of them, with the
    C(Thumbprint) of each (the CA certificate's SHA-1 fingerprint, as hex digits).
  - A CA rotation uses the thumbprint to check, before the instance is touched, that every client's CA
    bundle already holds the new CA (compare it with C(openssl x509 -noout -fingerprint -sha1) of each
    certificate in the bundle).
  - Read-only; runs the same in check mode. Every call goes through C(AWSRetry.jittered_backoff).
author:
  - CSO platform engineering (@cso-platform)
options:
  certificate_identifier:
    description:
      - Only this CA (for example V(rds-ca-rsa2048-g1)). An unknown identifier fails with a message that
        lists the region's CAs.
      - Omitted, every CA of the region is returned.
    type: str
extends_documentation_fragment:
  - cso.rds_hardening.modules
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The thumbprint of the CA the instance moves to
  cso.rds_hardening.rds_certificate_info:
    region: eu-west-2
    certificate_identifier: rds-ca-rsa2048-g1
  register: target_ca

- name: Every CA of the region, and the default for new instances
  cso.rds_hardening.rds_certificate_info:
    region: eu-west-2
  register: cas

- name: Show the thumbprint (lower-case hex, no colons)
  ansible.builtin.debug:
    msg: "{{ target_ca.certificates[0].thumbprint }}"
"""

RETURN = r"""
certificates:
  description: The CAs, in the order RDS lists them. Keys are snake_cased C(Certificate) fields.
  returned: always
  type: list
  elements: dict
  contains:
    certificate_identifier:
      description: The CA's identifier.
      type: str
      sample: rds-ca-rsa2048-g1
    certificate_type:
      description: Always C(CA).
      type: str
      sample: CA
    thumbprint:
      description: The CA certificate's SHA-1 fingerprint, lower-case hex without separators.
      type: str
      sample: 6e4dc7dbd1b2c2b9d5b1a3c9e1e0f0a1b2c3d4e5
    valid_from:
      description: Start of the CA's validity (ISO 8601).
      type: str
      sample: "2021-05-21T22:15:59+00:00"
    valid_till:
      description: End of the CA's validity (ISO 8601).
      type: str
      sample: "2061-05-21T23:15:59+00:00"
    certificate_arn:
      description: The CA's ARN.
      type: str
      sample: arn:aws:rds:eu-west-2:123456789012:cert:rds-ca-rsa2048-g1
    customer_override:
      description: Whether the account overrides the default CA for new instances with this one.
      type: bool
      sample: false
default_certificate_for_new_launches:
  description: The CA new instances get (the account's override, else the region's default); empty when RDS does not say.
  returned: always
  type: str
  sample: rds-ca-rsa2048-g1
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

ARGUMENT_SPEC = dict(
    certificate_identifier=dict(type="str"),
)


def normalize(certificate):
    """A ``Certificate`` as this module returns it: snake_case keys, ISO dates, thumbprint as plain lower-case hex."""
    entry = camel_dict_to_snake_dict(certificate)
    for key in ("valid_from", "valid_till", "customer_override_valid_till"):
        if hasattr(entry.get(key), "isoformat"):
            entry[key] = entry[key].isoformat()
    if entry.get("thumbprint"):
        entry["thumbprint"] = entry["thumbprint"].replace(":", "").lower()
    return entry


def describe_certificates(module, rds, identifier):
    """Every page of DescribeCertificates: (certificates, default for new launches)."""
    parameters = {"CertificateIdentifier": identifier} if identifier else {}
    certificates, default = [], ""
    try:
        while True:
            page = rds.describe_certificates(aws_retry=True, **parameters)
            certificates += page.get("Certificates", [])
            default = page.get("DefaultCertificateForNewLaunches", default) or default
            if not page.get("Marker"):
                return certificates, default
            parameters["Marker"] = page["Marker"]
    except is_boto3_error_code("CertificateNotFound"):
        known = ", ".join(sorted(c["CertificateIdentifier"] for c in describe_certificates(module, rds, None)[0]))
        module.fail_json(
            msg=f"RDS has no certificate authority {identifier} in {module.region}. Use one of: {known}."
        )
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Could not describe the RDS certificate authorities")


def run(module):
    rds = module.client("rds", retry_decorator=AWSRetry.jittered_backoff())
    certificates, default = describe_certificates(module, rds, module.params["certificate_identifier"])
    module.exit_json(
        changed=False,
        certificates=[normalize(certificate) for certificate in certificates],
        default_certificate_for_new_launches=default,
    )


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
