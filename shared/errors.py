"""Error types shared by the whole suite."""


class InputError(ValueError):
    """Bad input from a user: a missing or corrupt file, an unknown option, a wrong value.

    The command line turns it into exit status 2 and prints its message alone (no traceback).
    Messages name the file or option and say what was expected.

    Attributes:
        from_rank0: Under ``torchrun``: raised on this rank because rank 0 met it
            (:func:`shared.distributed.on_rank0`), so rank 0 reports it and this rank need not.
    """

    from_rank0: bool = False
