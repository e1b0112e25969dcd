"""Error types shared by the whole suite."""


class InputError(ValueError):
    """Bad input from a user: a missing or corrupt file, an unknown option, a wrong value.

    The command line turns it into exit status 2 and prints its message alone (no traceback).
    Messages name the file or option and say what was expected.
    """
