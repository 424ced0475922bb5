"""Stand-in for ansible-test's get-pip bootstrap script, whose download host is not reachable here.

ansible-test runs it inside a fresh virtual environment with pip's install arguments. It installs
pip from the interpreter's bundled wheel (ensurepip) and then lets that pip install the requested
version from the package index.
"""

import ensurepip
import os
import subprocess
import sys

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

arguments = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if os.path.exists(SYSTEM_CA_BUNDLE):
    arguments += ["--cert", SYSTEM_CA_BUNDLE]  # ansible-test runs pip with a reduced environment
ensurepip.bootstrap(upgrade=True)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *arguments]))
