"""The one error type that user-facing code raises for bad input.

The command line turns an :class:`InputError` into one line on stderr and exit code 2, with no traceback.
Messages are sentences for a person at a microscope: what is wrong, and what to do about it.
"""


class InputError(ValueError):
    """Bad input: a malformed file, an impossible spec or prior, a wrong unit. The message says what to do."""
