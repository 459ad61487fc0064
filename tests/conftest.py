"""Test-wide isolation: every run gets its own AIRFLOW_HOME and credential cache directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="cognito-iam-tests-"))
os.environ.setdefault("AIRFLOW_HOME", str(_ROOT / "airflow"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW_COGNITO_IAM_CACHE_DIR", str(_ROOT / "cache"))
# Keep boto3 from finding a developer's real AWS credentials or config.
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_name, None)
