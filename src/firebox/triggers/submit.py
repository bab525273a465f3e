"""How triggers hand an event to a function: asynchronously, through the durable queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from firebox.arn import FunctionRef

# Queue ``payload`` for an asynchronous invoke of ``ref`` (synced to disk before it
# returns); the invocation's request id. Raises what an Invoke with InvocationType Event
# would (ResourceNotFound, RequestTooLarge …).
Submit = Callable[[FunctionRef, bytes], Awaitable[str]]
