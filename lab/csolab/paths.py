"""Where the lab keeps its state. ``CSO_LAB_DIR`` overrides the default ``<repo>/.lab``."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LAB_DIR = Path(os.environ.get("CSO_LAB_DIR", REPO_ROOT / ".lab"))
AWS_STATE_FILE = LAB_DIR / "aws.json"
AWS_ENV_FILE = LAB_DIR / "aws.env"
MOTO_PID_FILE = LAB_DIR / "moto.pid"
MOTO_LOG_FILE = LAB_DIR / "moto.log"
# present while the host lab is in its seeded state and nobody has used it since (csolab.hosts)
HOSTS_PRISTINE_MARKER = LAB_DIR / "hosts-pristine"

REGION = "eu-west-2"
DR_REGION = "eu-west-1"
ACCESS_KEY = "AKIALABTESTING000000"
SECRET_KEY = "lab-secret-key-not-a-real-credential"
