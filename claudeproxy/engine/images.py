"""
Images in OpenAI's shape (an C{image_url} part, a data: or http(s) URL) as
the Anthropic image blocks the CLI passes upstream.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .conversation import IMAGE_TYPES, Block
from .errors import bad_request

_DATA_URL = re.compile(r"^data:([^;,]+)((?:;[^;,]*)*),(.*)$", re.S)


def image_url_block(part: Mapping[str, Any], where: str) -> Block:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise bad_request("%s.image_url.url must be a string URL" % (where,), where + ".image_url")
    if url.startswith("data:"):
        m = _DATA_URL.match(url)
        if not m or ";base64" not in m.group(2):
            raise bad_request("%s.image_url.url must be a base64 data: URL" % (where,), where + ".image_url")
        media_type = m.group(1).lower()
        if media_type not in IMAGE_TYPES:
            raise bad_request(
                "%s: image type %s is not supported (use %s)" % (where, media_type, ", ".join(IMAGE_TYPES)),
                where + ".image_url",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": m.group(3)}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request("%s.image_url.url must be a data: or http(s) URL" % (where,), where + ".image_url")
