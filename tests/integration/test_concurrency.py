"""Reserved concurrency and the account limit: 429 TooManyRequestsException with Reason."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
from botocore.exceptions import ClientError

from conftest import invoke_json, python_function, unique
from shapes import assert_shape

SLOW = "import time\ndef handler(e, c):\n    time.sleep(e.get('s', 0))\n    return 'ok'\n"


def test_put_get_delete_function_concurrency(lam):
    name = unique()
    python_function(lam, name, SLOW)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    resp = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    assert_shape("lambda", "PutFunctionConcurrency", resp)
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    lam.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)


def test_reserved_zero_throttles_every_invoke(lam):
    name = unique()
    python_function(lam, name, SLOW)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name)
    err = exc.value.response
    assert err["Error"]["Code"] == "TooManyRequestsException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.delete_function_concurrency(FunctionName=name)
    assert invoke_json(lam, name)[0] == "ok"


def _race(lam, name: str, n: int, seconds: float) -> list[str]:
    barrier = threading.Barrier(n)

    def one(_: int) -> str:
        barrier.wait()
        try:
            invoke_json(lam, name, {"s": seconds})
            return "ok"
        except ClientError as exc:
            return exc.response.get("Reason", exc.response["Error"]["Code"])

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_invokes_past_reserved_concurrency_get_429(lam):
    name = unique()
    python_function(lam, name, SLOW)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    invoke_json(lam, name)  # warm one environment so the race is about concurrency only
    results = _race(lam, name, 4, 1.0)
    # One runs; the others are throttled unless they came after it ended (a slow start).
    assert set(results) == {"ok", "ReservedFunctionConcurrentInvocationLimitExceeded"}, results


def test_account_limit_throttles_unreserved_functions(server_factory):
    server = server_factory(account_concurrency=2, min_unreserved_concurrency=1)
    lam = server.client()
    name = unique()
    python_function(lam, name, SLOW)
    results = _race(lam, name, 4, 1.0)
    assert results.count("ok") == 2, results
    assert results.count("ConcurrentInvocationLimitExceeded") == 2, results
    settings = lam.get_account_settings()["AccountLimit"]
    assert settings["ConcurrentExecutions"] == 2


def test_reservation_cannot_starve_the_unreserved_pool(server_factory):
    server = server_factory(account_concurrency=10, min_unreserved_concurrency=5)
    lam = server.client()
    name = unique()
    python_function(lam, name, SLOW)
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=6)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 5
