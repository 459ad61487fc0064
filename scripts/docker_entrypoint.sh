#!/usr/bin/env bash
# Entrypoint wrapper for the compose services: hand over to the official /entrypoint unchanged,
# except that with the `devstack` profile running, the connections it published are loaded for any
# connection the user did not supply. Real connections (from .env / environment) always win.
set -euo pipefail

# compose_devstack.py writes one file per variable (raw JSON value), so nothing is eval'd here.
devstack_dir="${COGNITO_IAM_DEVSTACK_DIR:-/opt/airflow/devstack}"

for name in AIRFLOW_CONN_COGNITO_IAM_DEFAULT AIRFLOW_CONN_AWS_DEFAULT; do
  if [[ -n "${!name:-}" ]]; then
    continue
  fi
  # Compose passes an unset `${VAR:-}` as an empty string; an empty AIRFLOW_CONN_* is no connection.
  unset "${name}"
  if [[ -s "${devstack_dir}/${name}" ]]; then
    export "${name}=$(<"${devstack_dir}/${name}")"
  fi
done

exec /entrypoint "$@"
