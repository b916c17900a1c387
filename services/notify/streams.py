"""Live inbox streams: the per-device limit and the end on expiry or revocation are libs/service/streams.py's."""

from libs.service.streams import StreamSlots, TooManyStreams, end_reason

__all__ = ["StreamSlots", "TooManyStreams", "end_reason"]
