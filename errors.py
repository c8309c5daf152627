"""The error type for failures that the user can fix: bad input files, flags, folders."""


class UserError(Exception):
    """A failure caused by the user's input or environment, not by a bug in this program.

    The command-line programs print it as one line on stderr, without a traceback, and exit with
    exit_status: 2 for invalid usage or input, 1 for any other failure.
    """

    def __init__(self, message, exit_status=2):
        super().__init__(message)
        self.exit_status = exit_status
