"""Read a running server's live state: `GET /v1/murakkab/status` as a `RuntimeStatus`."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from murakkab_lg.errors import ConfigError, EngineUnavailableError
from murakkab_lg.runtime.status import RuntimeStatus

__all__ = ("fetch_status",)

STATUS_PATH = "/v1/murakkab/status"


def fetch_status(url: str, *, api_key: str | None = None, timeout_s: float = 10.0) -> RuntimeStatus:
    """The status of the `murakkab serve` at `url` (with or without the trailing `/v1`)."""
    base = url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(base + STATUS_PATH, headers=headers, timeout=timeout_s)
    except httpx.TransportError as e:
        raise EngineUnavailableError(f"no murakkab server answers at {base} ({type(e).__name__}: {e}). To fix: start "
                                     "it with `murakkab serve` or pass its address with --url.") from None
    if resp.status_code == 401:
        raise ConfigError(f"{base} wants an API key. To fix: pass --api-key KEY (or set $MURAKKAB_API_KEYS).")
    if resp.status_code != 200:
        raise EngineUnavailableError(f"{base}{STATUS_PATH} answered {resp.status_code}: {resp.text[:200]}. To fix: "
                                     "check that the URL is a murakkab server of this version.")
    try:
        return RuntimeStatus.model_validate_json(resp.content)
    except ValidationError as e:
        raise EngineUnavailableError(f"{base}{STATUS_PATH} sent a status this client cannot read ({e.error_count()} "
                                     "errors). To fix: use the same murakkab-lg version on both sides.") from None
