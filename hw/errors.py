"""The one exception type the command line turns into a one-line message and exit code 2."""


class LeopardError(Exception):
    """A problem with the user's input (file, config, option): the message says what and how to fix it."""
