"""Cognito calls made by task processes that share the credential cache on one worker.

1. A warm-cache task: a fresh process whose connection already has valid cached credentials.
   Target: 0 Cognito calls.
2. A backfill of 30 runs x 3 tasks, each task its own process (forked, as Airflow's task runner
   forks), several running at once. Target: <= 3 sign-ins in total.

    .venv/bin/python benchmarks/bench_cache.py [--runs 30] [--tasks 3] [--parallel 6]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time


def task(_: int) -> str:
    """One task process: a fresh in-process cache, a hook, one signed API call."""
    from airflow_cognito_iam.auth.cache import clear_memory_cache
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    clear_memory_cache()  # forked from the parent: start as empty as a new task process does
    hook = CognitoIamHook()
    identity = str(hook.request("GET", "/whoami").json()["identity_id"])
    hook.close()
    return identity


def sign_ins(calls: dict[str, int]) -> int:
    # One SRP sign-in is one InitiateAuth (+ RespondToAuthChallenge); a refresh is also an
    # InitiateAuth, so this over-counts if anything refreshed — it never hides a sign-in.
    return calls.get("InitiateAuth", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=6, help="task processes running at once")
    parser.add_argument(
        "--credential-lifetime", type=float, default=3600.0,
        help="seconds the stack's AWS credentials live (e.g. 6: exchanges repeat, sign-ins must not)",
    )
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cache-")
    from airflow_cognito_iam.devstack import DevStack
    from airflow_cognito_iam.hooks import cognito_iam  # noqa: F401 - import once, before forking

    context = multiprocessing.get_context("fork")
    with DevStack() as stack:
        os.environ.update(stack.env())

        # 1. warm cache: one task fills it, the next (a new process) should not call Cognito.
        with context.Pool(1, maxtasksperchild=1) as pool:
            pool.map(task, [0])
        stack.reset_stats()
        with context.Pool(1, maxtasksperchild=1) as pool:
            pool.map(task, [1])
        warm = stack.stats()["cognito"]
        print(f"warm-cache task: {sum(warm.values())} Cognito calls {warm or ''} (target 0)")

        # 2. backfill on a cold cache: every task is a new process, `parallel` at a time.
        for path in os.scandir(os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"]):
            os.unlink(path.path)
        stack.reset_stats()
        stack.set_credential_lifetime(args.credential_lifetime)
        total = args.runs * args.tasks
        started = time.perf_counter()
        with context.Pool(args.parallel, maxtasksperchild=1) as pool:
            identities = set(pool.map(task, range(total), chunksize=1))
        elapsed = time.perf_counter() - started
        calls = stack.stats()["cognito"]
        print(
            f"backfill {args.runs} runs x {args.tasks} tasks = {total} task processes ({args.parallel} at once, "
            f"{elapsed:.1f}s): {sign_ins(calls)} sign-in(s) (target <= 3); Cognito calls {calls}; "
            f"{len(identities)} identity"
        )


if __name__ == "__main__":
    main()
