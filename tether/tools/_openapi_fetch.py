"""Fetching an OpenAPI document from a live service (``tether tools lock/check`` with a URL).

The service is not trusted more than a file would be, and less: its answer was read whole into
memory (a never-ending body grew until the process died) and parsed with no bound on nesting (a
deeply nested YAML reply raised a bare RecursionError). The body is read up to a limit; what it
parses to goes through the same checks as a file (`load_spec`).
"""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from tether.tools._errors import OpenAPIError
from tether.tools._openapi_yaml import load_yaml

#: The largest published specs are ~12 MB of JSON; five times that is not an API description.
MAX_SPEC_BYTES = 64 * 1024 * 1024


def fetch_spec(url: str, *, timeout: float = 30.0, max_bytes: int = MAX_SPEC_BYTES) -> Any:
    """The parsed document at `url` (JSON or YAML); `load_spec` checks its shape."""
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise OpenAPIError(
                        f"OpenAPI spec at {url!r} is larger than {max_bytes:,} bytes; not read "
                        "further (is this URL the spec, and not a stream?)"
                    )
                chunks.append(chunk)
            encoding = response.encoding or "utf-8"
    except httpx.HTTPError as e:
        raise OpenAPIError(f"cannot fetch OpenAPI spec {url!r}: {e}") from None
    try:
        text = b"".join(chunks).decode(encoding)
    except (UnicodeDecodeError, LookupError) as e:
        raise OpenAPIError(
            f"OpenAPI spec at {url!r} is not valid {encoding} text ({e}); serve it as UTF-8"
        ) from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        raise OpenAPIError(f"OpenAPI spec at {url!r} is not valid JSON/YAML: {e}") from None
    except RecursionError:
        raise OpenAPIError(
            f"OpenAPI spec at {url!r} nests too deeply to parse (thousands of levels); it is "
            "not an API description"
        ) from None
