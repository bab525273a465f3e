"""Durable state: one interface per kind of store, one module per backend."""


class StoreUnavailable(RuntimeError):
    """A configured store cannot be reached or used at start (and why)."""
