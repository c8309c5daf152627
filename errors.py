"""The error type for failures that the user can fix, and how the programs report errors.

Library code raises UserError. Each program's main() runs inside run_main(), which prints such an
error as one line on stderr and returns its exit status. Unexpected exceptions are bugs, so they
keep their traceback.
"""

import argparse
import sys

from i18n import _

EXIT_INTERRUPTED = 130  # the shell's status for a program stopped by Ctrl-C (128 + SIGINT)


class UserError(Exception):
    """A failure caused by the user's input or environment, not by a bug in this program.

    exit_status is 2 for invalid usage or input, 1 for any other failure, 130 for an interruption.
    """

    def __init__(self, message, exit_status=2):
        super().__init__(message)
        self.exit_status = exit_status


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default in --help, except where there is none to show (None or False)."""

    def _get_help_string(self, action):
        # argparse's own version appends " (default: ...)" in English only, so this one does it.
        if (not action.option_strings or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS):
            return action.help
        return action.help + _(" (default: %(default)s)")


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser that reports invalid flags in one line and takes no abbreviations.

    argparse would otherwise print the whole usage text before the error, and accept --epoch for
    --epochs, so that a typo could silently change what runs.
    """

    def __init__(self, **kwargs):
        super().__init__(formatter_class=HelpFormatter, allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(2, _("error: {message} (see {program} --help)").format(
            message=message, program=self.prog) + "\n")


def integer(text):
    """Convert a flag's text to an int; argparse names this function in its error messages."""
    return int(text)


def decimal(text):
    """Convert a flag's text to a float; argparse names this function in its error messages."""
    return float(text.replace(",", "."))  # a decimal comma is accepted too


# argparse writes "invalid <name of the type function> value": give the names in the language.
integer.__name__ = _("integer")
decimal.__name__ = _("number")


def run_main(main):
    """Call main() and return its exit status, reporting UserError and Ctrl-C in one line."""
    try:
        return main()
    except UserError as error:
        print(_("error: {message}").format(message=error), file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print(_("error: interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
