"""A real Airflow for end-to-end tests: its own SQLite AIRFLOW_HOME, migrated once per session.

Each airflow CLI call costs 5-20 s on a small machine, so the database is migrated once and the
tests share it; every test still runs real `airflow` processes against the devstack over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_airflow(args: list[str], env: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the airflow CLI of this virtualenv; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(BIN / "airflow"), *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        pytest.fail(f"airflow {' '.join(args)} exited {result.returncode}:\n{output}")
    return result


class AirflowCli(Protocol):
    def __call__(
        self, args: list[str], env: Mapping[str, str], timeout: float = ...
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture(scope="session")
def airflow_cli() -> AirflowCli:
    """``airflow_cli(args, env)``: run the airflow CLI, failing the test with its output on error."""
    return run_airflow


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a migrated, isolated Airflow whose dags folder is the repository's dags/."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    run_airflow(["db", "migrate"], env)
    return env
