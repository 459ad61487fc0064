"""Airflow-free core: sign in to a user pool, exchange for AWS credentials, sign requests."""
