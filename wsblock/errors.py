"""Errors that map to the command's exit codes."""


class UsageError(Exception):
    """Bad input from the user: exit 2, nothing written."""


class HarnessError(Exception):
    """The harness itself failed (not the system under test): exit 1."""
