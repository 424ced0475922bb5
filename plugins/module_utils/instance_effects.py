# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A plan entry's impact in words (its ``effect``): who notices the change, and how. Pure: no AWS call."""

from __future__ import annotations

# impact -> what it means for the clients of the instance; the keys are common.IMPACTS
IMPACTS = {
    "none": None,
    "brief-interruption": "Turning automated backups on or off restarts the instance: every client connection drops briefly.",
    "interruption": "Clients are cut off until someone acts.",
    "restart": "The database restarts: every client connection drops until it is back.",
    "data-loss": "Data is deleted at once and cannot be brought back.",
    "replacement": (
        "The instance is replaced (snapshot, copy, restore, identifier swap): clients lose the database for the "
        "whole copy, and anything written after the snapshot is lost."
    ),
}


def _ca_effect(desired, restart):
    # AWS: RDS API Reference, ModifyDBInstance "CertificateRotationRestart" (by default the instance restarts
    # and the certificate is not updated until it restarts) and DBEngineVersion
    # "SupportsCertificateRotationWithoutRestart" (the engine version rotates the server certificate without
    # rebooting); a TLS session keeps the certificate of its handshake.
    trust = f"Clients that verify the server certificate need {desired} in their CA bundle before then."
    if restart:
        return (
            f"The database restarts once to load a certificate from {desired}: every connection drops until it is "
            f"back. {trust}"
        )
    return (
        f"No restart: RDS replaces the server certificate in place. Open sessions go on; every new connection gets a "
        f"certificate from {desired} at once. {trust}"
    )


def effect(attribute, current, desired, impact, master_username=None, ca_rotation_restart=True):
    """The ``effect`` of one plan entry (None when nobody notices it)."""
    if attribute == "ca_certificate_identifier":
        return _ca_effect(desired, ca_rotation_restart)
    if attribute == "backup_retention_period" and impact == "data-loss":
        return (
            f"Automated backups older than {desired} days (the instance keeps {current} now) are deleted at once: "
            f"point-in-time restore to more than {desired} days ago is no longer possible."
        )
    if attribute == "manage_master_user_password":
        user = f"the master user {master_username}" if master_username else "the master user"
        if desired:
            return (
                f"RDS replaces the password of {user} at once with a generated one kept in Secrets Manager: every "
                "application, script or tool that logs in as that user with the old password is refused until it "
                "reads the new secret."
            )
        return (
            f"RDS sets the password of {user} to master_user_password at once and deletes the Secrets Manager secret: "
            "everything that reads that secret to log in is refused until it uses the new password."
        )
    return IMPACTS[impact]
