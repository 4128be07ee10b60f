"""The one exception a user of quantune-iree should ever see."""

from __future__ import annotations


class QuantuneError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message says what failed, on which file/layer/node, and what to try next. The CLI prints
    it and exits with status 2; anything else escaping is a bug. Callers that act on an error
    read its fields, never its text: `node` (the ONNX node it concerns), `layer` (a layer id),
    `file` (the path it concerns), each None when unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        layer: int | None = None,
        file: str | None = None,
    ) -> None:
        super().__init__(message)
        self.node = node
        self.layer = layer
        self.file = file
