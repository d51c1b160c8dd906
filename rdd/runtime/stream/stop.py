"""How a runner run ends: stop reasons, exit codes and the signal-safe :class:`StopSignal`.

Light on purpose (standard library only): the command line imports it to install its SIGINT /
SIGTERM handlers before numpy, OpenCV or onnxruntime load.

Every report carries ``completed`` and ``stop_reason`` (one of :data:`STOP_REASONS`):

======================  =========  ==========================================================
stop_reason             completed  exit code of ``rdd-infer``
======================  =========  ==========================================================
``end_of_input``        true       0
``max_frames``          true       0
``stream_ended``        false      2 (a live source dropped and could not be reopened)
``decode_error``        false      2 (a file stopped decoding short of its declared length)
``sigint``              false      130 (Ctrl-C)
``sigterm``             false      143 (``docker stop``, systemd)
``error``               false      1 / 2 (an exception; no report or overlay is written)
======================  =========  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "STOP_REASONS",
    "COMPLETE_REASONS",
    "SIGNAL_EXIT_CODES",
    "StopSignal",
    "Interrupted",
    "stop_reason",
]

STOP_REASONS = ("end_of_input", "max_frames", "stream_ended", "decode_error", "sigint", "sigterm", "error")
COMPLETE_REASONS = ("end_of_input", "max_frames")
SIGNAL_EXIT_CODES = {"sigint": 130, "sigterm": 143}


def stop_reason(
    requested: str | None, hit_max_frames: bool, source_end: str | None, source_message: str | None = None
) -> tuple[str, str | None]:
    """``(stop_reason, detail)`` of a finished run, first match wins.

    A stop request (``"sigint"`` / ``"sigterm"``), then ``"max_frames"``, then the source's own
    early end (``"decode_error"``, ``"stream_ended"``, with its one-line message), else
    ``"end_of_input"``.
    """
    if requested is not None:
        return requested, None
    if hit_max_frames:
        return "max_frames", None
    if source_end in ("decode_error", "stream_ended"):
        return source_end, source_message
    return "end_of_input", None


class StopSignal:
    """A stop request that may arrive at any moment (a signal handler) for a running pipeline.

    :meth:`request` records the first reason (``"sigint"``, ``"sigterm"``) and, while a
    :class:`~rdd.runtime.stream.stream.Pipeline` runs (:attr:`armed`), makes it stop after the frame
    in hand: the frames done so far are written (a valid overlay under its final name) and the
    report says ``completed: false`` and ``stop_reason``. Only sets flags: safe in a handler.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._listener: Callable[[], None] | None = None

    @property
    def armed(self) -> bool:
        """A pipeline is running and will honour :meth:`request`."""
        return self._listener is not None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        listener = self._listener
        if listener is not None:
            listener()


class Interrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM outside a running pipeline (imports, model loading): ends the command."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
