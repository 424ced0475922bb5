# Copyright: (c) 2026, cso.rds_hardening contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory of the CA certificates in PEM files, for the rds_ca_bundle role.

    rds_ca_inventory.py --split-dir DIR FILE [FILE ...]

Splits every file into its certificates, parses each with ``openssl x509`` (a certificate that
does not parse is an error, never silently skipped), de-duplicates by SHA-256 fingerprint of the
DER encoding (so a re-wrapped or re-ordered copy of the same CA is one entry), keeps the first
occurrence's order, writes each certificate to ``DIR/<fingerprint>.pem`` and prints JSON:
``{"certificates": [{fingerprint_sha256, subject, not_after, expired, pem, source}], "errors": [...]}``.
Runs on the managed host with only Python's standard library and the openssl CLI.
"""

import json
import os
import re
import subprocess
import sys

PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.S)
BEGIN_MARKER = "-----BEGIN CERTIFICATE-----"


def openssl_x509(pem, *options):
    return subprocess.run(["openssl", "x509", *options], input=pem, capture_output=True, text=True, check=False)


def describe(pem):
    """Fingerprint, subject, end date, expiry and canonical PEM of one certificate; raises on garbage."""
    info = openssl_x509(pem, "-noout", "-nameopt", "RFC2253", "-fingerprint", "-sha256", "-subject", "-enddate")
    canonical = openssl_x509(pem, "-outform", "PEM")
    if info.returncode != 0 or canonical.returncode != 0:
        raise ValueError((info.stderr or canonical.stderr).strip().splitlines()[-1:] or ["unparseable"])
    fields = dict(line.split("=", 1) for line in info.stdout.splitlines() if "=" in line)
    fingerprint = next(value for key, value in fields.items() if "Fingerprint" in key)
    # -checkend 0 exits 1 when the certificate has expired
    expired = openssl_x509(pem, "-noout", "-checkend", "0").returncode != 0
    return {
        "fingerprint_sha256": fingerprint.replace(":", "").lower(),
        "subject": fields.get("subject", "").strip(),
        "not_after": fields.get("notAfter", "").strip(),
        "expired": expired,
        "pem": canonical.stdout,
    }


def certificates_of(path):
    with open(path, encoding="ascii", errors="replace") as handle:
        text = handle.read()
    blocks = PEM_BLOCK.findall(text)
    if text.count(BEGIN_MARKER) != len(blocks):
        raise ValueError(f"{path}: {text.count(BEGIN_MARKER)} BEGIN CERTIFICATE markers but {len(blocks)} complete blocks")
    if not blocks:
        raise ValueError(f"{path}: no PEM certificate found")
    return [f"{BEGIN_MARKER}\n{body}\n-----END CERTIFICATE-----\n" for body in blocks]


def main(argv):
    if len(argv) < 3 or argv[0] != "--split-dir":
        print(__doc__, file=sys.stderr)
        return 64
    split_dir, files = argv[1], argv[2:]
    os.makedirs(split_dir, exist_ok=True)
    seen, certificates, errors = set(), [], []
    for path in files:
        try:
            blocks = certificates_of(path)
        except (OSError, ValueError) as error:
            errors.append(str(error))
            continue
        for index, pem in enumerate(blocks):
            try:
                entry = describe(pem)
            except ValueError as error:
                errors.append(f"{path}: certificate #{index + 1} does not parse: {error}")
                continue
            if entry["fingerprint_sha256"] in seen:
                continue
            seen.add(entry["fingerprint_sha256"])
            entry["source"] = os.path.basename(path)
            with open(os.path.join(split_dir, entry["fingerprint_sha256"] + ".pem"), "w", encoding="ascii") as out:
                out.write(entry["pem"])
            certificates.append(entry)
    print(json.dumps({"certificates": certificates, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
