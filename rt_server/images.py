"""Images a client sends as ``data:`` URLs: parsed, size-limited and type-checked (pure).

The declared type must be what the bytes are (PNG, JPEG, WebP or GIF, told by their magic
bytes): a mislabelled or unknown image is refused here rather than by the service, and the
limit applies to the decoded bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pybase64

from rt_server.errors import ClientError

#: The default of ``MAX_IMAGE_BYTES``: the largest image whose base64 fits a default
#: ``MAX_MESSAGE_BYTES`` (256 KiB) message.
DEFAULT_MAX_IMAGE_BYTES = 192 * 1024

_DATA_URL = re.compile(r"data:(image/[a-z]+);base64,", re.ASCII)
_MAGIC: tuple[tuple[str, bytes, int], ...] = (
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/gif", b"GIF8", 0),
    ("image/webp", b"WEBP", 8),  # after "RIFF" and the size
)
TYPES = tuple(kind for kind, _, _ in _MAGIC)


@dataclass(frozen=True, slots=True)
class Image:
    """A checked image: its type, size in bytes, and the data URL to forward."""

    media_type: str
    size: int
    url: str


def sniff(data: bytes) -> str | None:
    """The image type of ``data`` by its magic bytes, or None."""
    for kind, magic, offset in _MAGIC:
        if data[offset : offset + len(magic)] == magic and (
            kind != "image/webp" or data[:4] == b"RIFF"
        ):
            return kind
    return None


def parse_image(url: str, max_bytes: int) -> Image:
    """A ``data:image/...;base64,...`` URL checked; :class:`ClientError` says what is wrong
    (``image_too_large``, ``invalid_image``)."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ClientError(
            "invalid_image",
            "'image' must be a data URL: data:image/png;base64,... (or jpeg, webp, gif)",
        )
    declared, encoded = match.group(1), url[match.end() :]
    if len(encoded) * 3 // 4 > max_bytes + 2:  # refused before decoding
        raise ClientError("image_too_large", f"images are limited to {max_bytes} bytes")
    try:
        data = pybase64.b64decode(encoded, validate=True)
    except ValueError:
        raise ClientError("invalid_image", "the image is not valid base64") from None
    if len(data) > max_bytes:
        raise ClientError("image_too_large", f"images are limited to {max_bytes} bytes")
    actual = sniff(data)
    if actual is None:
        raise ClientError("invalid_image", f"the image is none of {', '.join(TYPES)}")
    if actual != declared:
        raise ClientError("invalid_image", f"the image is declared {declared} but is {actual}")
    return Image(actual, len(data), url)
