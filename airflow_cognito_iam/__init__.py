"""Apache Airflow provider: call AWS_IAM-protected APIs as a Cognito user."""

__version__ = "0.1.0"
