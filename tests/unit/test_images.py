"""Images by their magic bytes, and the data URL checks (pure)."""

from __future__ import annotations

import base64

import pytest

from rt_server.errors import ClientError
from rt_server.images import parse_image, sniff

SAMPLES = {
    "image/png": b"\x89PNG\r\n\x1a\n" + bytes(8),
    "image/jpeg": b"\xff\xd8\xff\xe0" + bytes(8),
    "image/gif": b"GIF87a" + bytes(8),
    "image/webp": b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(4),
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_type_is_told_by_its_magic_bytes(kind: str) -> None:
    assert sniff(SAMPLES[kind]) == kind
    url = f"data:{kind};base64,{base64.b64encode(SAMPLES[kind]).decode()}"
    image = parse_image(url, 1024)
    assert (image.media_type, image.size, image.url) == (kind, len(SAMPLES[kind]), url)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64,not base64!", "invalid_image"),
        ("data:text/plain;base64,aGVsbG8=", "invalid_image"),
        ("data:image/bmp;base64," + base64.b64encode(b"BM" + bytes(10)).decode(), "invalid_image"),
        (
            "data:image/webp;base64," + base64.b64encode(b"RIFX" + bytes(10)).decode(),
            "invalid_image",
        ),
        ("data:image/png;base64," + "A" * 4000, "image_too_large"),
    ],
)
def test_bad_images_are_refused_with_a_code(url: str, code: str) -> None:
    with pytest.raises(ClientError) as refused:
        parse_image(url, 1024)
    assert refused.value.code == code
