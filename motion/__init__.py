"""Motion core: conventions, MotionClip, audio features, the hierarchical motion diffusion model."""
from .clip import MotionClip
from .errors import AudioError, ChatAnyoneError, CheckpointError, ClipError

__all__ = ["MotionClip", "ChatAnyoneError", "AudioError", "ClipError", "CheckpointError"]
