"""Layer 0: the one exception family LLMOS raises for bad input.

Every message names the offending value and what would be valid; the CLI
prints it as one line and exits with code 2.
"""


class LLMOSError(ValueError):
    """Bad input: a value, file or request that LLMOS cannot use as given."""
