"""GET /metrics: Prometheus text, public, counts matching the invokes made."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import invoke_json, python_function, unique

OK = "def handler(event, context):\n    return {'ok': True}\n"
FAILS = "def handler(event, context):\n    raise ValueError('boom')\n"
SLOW = "import time\ndef handler(event, context):\n    time.sleep(event.get('s', 1))\n"


def scrape(server) -> tuple[dict[tuple[str, frozenset], float], dict[str, str], str]:
    """Samples keyed by (name, labels), the family types, and the Content-Type."""
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as resp:
        content_type = resp.headers["Content-Type"]
        text = resp.read().decode()
    samples: dict[tuple[str, frozenset], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types, content_type


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_invocations_errors_and_starts(server, lam):
    ok, bad = unique("mok"), unique("mbad")
    python_function(lam, ok, OK)
    python_function(lam, bad, FAILS)
    for _ in range(3):
        invoke_json(lam, ok)
    for _ in range(2):
        _, resp = invoke_json(lam, bad)
        assert resp["FunctionError"] == "Unhandled"
    samples, types, content_type = scrape(server)
    assert content_type.startswith("text/plain")
    assert types["firebox_invocations"] == "counter"
    assert types["firebox_duration_seconds"] == "histogram"
    q = {"qualifier": "$LATEST"}
    assert value(samples, "firebox_invocations_total", function=ok, **q) == 3
    assert value(samples, "firebox_errors_total", function=ok, **q) == 0
    assert value(samples, "firebox_cold_starts_total", function=ok, **q) == 1
    assert value(samples, "firebox_warm_starts_total", function=ok, **q) == 2
    assert value(samples, "firebox_duration_seconds_count", function=ok, **q) == 3
    assert value(samples, "firebox_duration_seconds_sum", function=ok, **q) > 0
    assert value(samples, "firebox_init_duration_seconds_count", function=ok, **q) == 1
    assert value(samples, "firebox_invocations_total", function=bad, **q) == 2
    assert value(samples, "firebox_errors_total", function=bad, **q) == 2
    # Nothing is running now.
    assert value(samples, "firebox_concurrent_executions", function=ok) == 0
    assert value(samples, "firebox_provisioned_concurrency_in_use", function=ok) == 0


def test_metrics_label_qualifiers_separately(server, lam):
    name = unique("mqual")
    python_function(lam, name, OK)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    invoke_json(lam, name)
    invoke_json(lam, name, Qualifier="live")
    invoke_json(lam, name, Qualifier="live")
    samples, _, _ = scrape(server)
    assert value(samples, "firebox_invocations_total", function=name, qualifier="$LATEST") == 1
    assert value(samples, "firebox_invocations_total", function=name, qualifier="live") == 2


def test_metrics_count_throttles_not_as_invocations(server, lam):
    name = unique("mthr")
    python_function(lam, name, OK)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            invoke_json(lam, name)
        assert exc.value.response["Error"]["Code"] == "TooManyRequestsException"
    samples, _, _ = scrape(server)
    assert value(samples, "firebox_throttles_total", function=name, qualifier="$LATEST") == 2
    assert value(samples, "firebox_invocations_total", function=name, qualifier="$LATEST") == 0


def test_metrics_show_concurrency_while_running(server, lam):
    name = unique("mconc")
    python_function(lam, name, SLOW, Timeout=10)
    invoke_json(lam, name, {"s": 0})  # warm it so the running invoke is not mid-init
    threads = [threading.Thread(target=invoke_json, args=(lam, name, {"s": 1.5})) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 5
        seen = 0.0
        while time.monotonic() < deadline and seen < 2:
            samples, _, _ = scrape(server)
            seen = value(samples, "firebox_concurrent_executions", function=name)
            time.sleep(0.05)
        assert seen == 2
    finally:
        for t in threads:
            t.join()
    samples, _, _ = scrape(server)
    assert value(samples, "firebox_concurrent_executions", function=name) == 0


def test_metrics_show_async_queue_depth(server, lam):
    name = unique("mq")
    python_function(lam, name, OK)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({}))
    assert resp["StatusCode"] == 202
    samples, types, _ = scrape(server)
    assert types["firebox_async_queue_depth"] == "gauge"
    assert value(samples, "firebox_async_queue_depth", function=name) == 1
    age = ("firebox_async_oldest_event_age_seconds", frozenset({"function": name}.items()))
    assert 0 <= samples[age] < 30  # present, and as young as the event just sent
    dead = ("firebox_async_dead_lettered_events", frozenset({"function": name}.items()))
    assert samples[dead] == 0
