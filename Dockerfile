# Airflow image with the cognito_iam provider (and its offline devstack) installed.
#
# Built FROM the official image so the entrypoint, users and layout stay those of the official
# docker-compose topology. The python3.11 variant matches constraints.txt, which pins every
# dependency (including apache-airflow 3.3.2) for Python 3.11; a different Python could resolve
# differently from the tested set.
FROM apache/airflow:3.3.2-python3.11

USER airflow

# Only what the wheel build needs, so editing tests or DAGs does not invalidate the pip layer.
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/cognito-iam/
COPY --chown=airflow:0 airflow_cognito_iam /opt/cognito-iam/airflow_cognito_iam

# apache-airflow is named explicitly (as the official "extend the image" guide advises) so pip can
# never replace the image's Airflow while resolving our dependencies.
RUN pip install --no-cache-dir \
        --constraint /opt/cognito-iam/constraints.txt \
        "apache-airflow==3.3.2" \
        "/opt/cognito-iam[devstack]"

# The credential cache is per container (one worker = one cache, shared by its task processes);
# devstack/ is where the compose devstack publishes its connections (a named volume initialised
# from this directory, hence group 0 writable like the rest of AIRFLOW_HOME for arbitrary UIDs).
ENV AIRFLOW_COGNITO_IAM_CACHE_DIR=/opt/airflow/cognito-iam-cache
RUN mkdir -p /opt/airflow/cognito-iam-cache /opt/airflow/devstack \
    && chmod 0770 /opt/airflow/cognito-iam-cache \
    && chmod 0775 /opt/airflow/devstack

COPY --chown=airflow:0 scripts/docker_entrypoint.sh scripts/compose_devstack.py /opt/cognito-iam/scripts/

# Same dumb-init + /entrypoint chain as the official image; the wrapper only loads the devstack's
# connection when the compose `devstack` profile is running and no real connection was given.
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/cognito-iam/scripts/docker_entrypoint.sh"]
CMD []
