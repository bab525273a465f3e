import pytest

from firebox.errors import TooManyRequests
from firebox.workers.concurrency import ConcurrencyLimiter


def test_reserved_function_uses_its_own_pool():
    lim = ConcurrencyLimiter(account_limit=3)
    lim.set_reserved({"a": 1})
    lim.acquire("a")
    with pytest.raises(TooManyRequests) as exc:
        lim.acquire("a")
    assert exc.value.fields["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lim.acquire("b")
    lim.acquire("c")
    with pytest.raises(TooManyRequests) as exc:
        lim.acquire("d")
    assert exc.value.fields["Reason"] == "ConcurrentInvocationLimitExceeded"
    lim.release("b")
    lim.acquire("d")
    assert lim.running() == 3


def test_changing_reservations_moves_running_counts():
    lim = ConcurrencyLimiter(account_limit=2)
    lim.acquire("a")
    lim.set_reserved({"a": 1})
    lim.acquire("b")
    lim.release("a")
    lim.set_reserved({})
    lim.acquire("c")
    with pytest.raises(TooManyRequests):
        lim.acquire("d")
