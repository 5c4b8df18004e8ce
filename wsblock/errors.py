"""Errors that map to the command's exit codes."""


class UsageError(Exception):
    """Bad input from the user: exit 2, nothing written."""


class HarnessError(Exception):
    """The harness itself failed (not the system under test): exit 1."""


class CellFailed(HarnessError):
    """The cell could not be measured because of its work (a job raised, exited or hung): exit 1.

    The command writes a failed record with the cause and what the work
    wrote (``user_output``).

    Args:
        message: One line: the cause.
        user_output: What the server's processes wrote (see
            :func:`wsblock.engine.runner.user_output`), if known.
    """

    def __init__(self, message: str, user_output: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.user_output = user_output
