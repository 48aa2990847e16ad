"""Errors raised for user mistakes (bad input files, bad options).

The CLI catches :class:`ChatAnyoneError` and prints its message on one line with a non-zero exit
code; anything else is a bug and keeps its traceback.
"""


class ChatAnyoneError(Exception):
    """Base class of every error caused by user input; its message is a complete one-line sentence."""


class AudioError(ChatAnyoneError, ValueError):
    """Audio input cannot be used: missing, empty, undecodable, non-finite or too short."""


class ClipError(ChatAnyoneError, ValueError):
    """A MotionClip (or an ``.npz`` that should hold one) has wrong shapes, ranges or keys."""


class CheckpointError(ChatAnyoneError):
    """A model checkpoint is missing or does not match the model it is loaded into."""
