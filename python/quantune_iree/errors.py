"""The one exception a user of quantune-iree should ever see."""

from __future__ import annotations


class QuantuneError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message says what failed, on which file/layer/node, and what to try next. The CLI prints
    it and exits with status 2; anything else escaping is a bug.
    """
