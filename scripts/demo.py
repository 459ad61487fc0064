"""`make demo`: run the daily example DAG for real against the offline devstack and show what it wrote.

Steps: start the devstack (Cognito user pool + identity pool + S3 + an IAM-protected API), create
an AIRFLOW_HOME with SQLite under .local/demo, `airflow db migrate`, then
`airflow dags test cognito_iam_orders_daily <yesterday>` with the connections passed as
AIRFLOW_CONN_* variables, and read the object back from the stack's S3. The devstack is stopped
whatever happens; the exit code is non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow_stack import LOCAL, StackError, airflow, airflow_env, devstack, s3_client, say

DAG_ID = "cognito_iam_orders_daily"


def task_log_lines(output: str) -> list[str]:
    """The provider's own log lines (one per request, then a summary), without timestamps."""
    lines = []
    for line in output.splitlines():
        if "airflow_cognito_iam" in line and "] " in line:
            message = line.split("] ", 1)[1].rsplit(" [", 1)[0]
            lines.append(message.strip())
    return lines


def devstack_stats(api_url: str) -> dict[str, Any]:
    """The devstack's counters (unsigned /_stats): how many sign-ins and API calls the run made."""
    with urllib.request.urlopen(f"{api_url}/_stats", timeout=10) as response:  # noqa: S310 - local stack
        stats: dict[str, Any] = json.load(response)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    parser.add_argument("--date", type=date.fromisoformat, default=yesterday, help="logical date (YYYY-MM-DD)")
    parser.add_argument("--show", type=int, default=3, help="records to print")
    args = parser.parse_args(argv)
    ds = args.date.isoformat()
    home = LOCAL / "demo" / "airflow"
    logs = LOCAL / "demo" / "logs"

    try:
        say("starting the devstack (offline Cognito + identity pool + S3 + SigV4 API)")
        with devstack(logs / "devstack.log") as info:
            say(f"devstack up: API {info.get('api_url')}, user pool {info.get('user_pool_id')}")
            env = airflow_env(home, info)
            say(f"AIRFLOW_HOME={home} (SQLite); airflow db migrate")
            airflow(["db", "migrate"], env, logs / "db-migrate.log")
            say(f"airflow dags test {DAG_ID} {ds}")
            output = airflow(["dags", "test", DAG_ID, ds], env, logs / "dags-test.log")
            for line in task_log_lines(output):
                print(f"    {line}")

            bucket = str(info["bucket"])
            key = f"orders/dt={ds}/orders.jsonl"
            body = s3_client(info).get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            records = [json.loads(line) for line in body.splitlines() if line.strip()]
            if not records:
                raise StackError(f"s3://{bucket}/{key} is empty")
            say(f"wrote s3://{bucket}/{key}: {len(records)} records, {len(body.encode())} bytes")
            for record in records[: args.show]:
                print(f"    {json.dumps(record, sort_keys=True)}")
            stats = devstack_stats(str(info["api_url"]))
            calls = ", ".join(f"{action} {count}" for action, count in sorted(stats.get("cognito", {}).items()))
            say(f"devstack saw: Cognito calls: {calls}; signed API requests: {stats.get('api', {}).get('requests')}")
        say("devstack stopped; demo OK")
        return 0
    except StackError as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an unexpected failure must still exit non-zero with a readable line
        print(f"demo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted; devstack stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
