"""poster.mark: the hidden-ID codec (see DESIGN notes below)."""

from .codec import MIN_SIDE, Detection, MarkError, embed, extract, extract_detail
from .ecc import PAYLOAD_BITS

__all__ = ["MIN_SIDE", "PAYLOAD_BITS", "Detection", "MarkError", "embed", "extract", "extract_detail"]
