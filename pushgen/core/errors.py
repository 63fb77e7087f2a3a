"""Errors a user can cause (bad file, bad argument, bad config).

The CLI prints them as one line and exits 2; servers map them to HTTP 4xx. Anything else is a bug
and keeps its traceback.
"""


class PushgenError(Exception):
    """A user-facing error: the message says what is wrong and, where possible, how to fix it."""


class DataContractError(PushgenError):
    """A table does not meet its data contract (missing columns, wrong types, empty)."""


class ConfigError(PushgenError):
    """A configuration value is invalid (unknown category, bad threshold, ...)."""
