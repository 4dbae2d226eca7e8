"""The one exception type for user mistakes (bad data, bad checkpoint, bad arguments).

The CLI turns it into a single message on stderr and exit status 2; anything else is a bug
and keeps its traceback.
"""


class FashionCNNError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""
