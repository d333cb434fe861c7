"""Forward an uploaded audio file to an ASR replica's /transcribe, mapping failures to clear errors."""

from __future__ import annotations

import time

import httpx

from .replicas import Pool

# CPU decoding runs at a fraction of real time; a few minutes of audio must still fit.
TIMEOUT = httpx.Timeout(300.0, connect=5.0)


class ProxyError(Exception):
    """A transcription request the frontend could not complete; carries the HTTP answer to give."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.body = {"error": error, "detail": detail}


def _upstream_error(response: httpx.Response) -> tuple[str | None, str]:
    """ASR's own error code and detail, from its JSON ``{"error", "detail"}`` or its text."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return body.get("error"), str(body["detail"])
    return None, str(body)[:500]


async def transcribe(
    client: httpx.AsyncClient,
    pool: Pool,
    filename: str,
    content: bytes,
    content_type: str | None,
) -> dict:
    """POST the file to ``{replica}/transcribe`` as multipart field ``file``; return ASR's JSON.
    The replicas take turns; the next one is tried only when one cannot be connected to, so a
    request that reached a server is never sent twice."""
    if not pool.replicas:
        raise ProxyError(
            503,
            "asr_not_configured",
            "No ASR server is configured for this frontend: set ASR_URL "
            "(or services__asr__http__0), e.g. ASR_URL=http://127.0.0.1:8000.",
        )
    files = {"file": (filename or "audio.wav", content, content_type or "application/octet-stream")}
    refused = []
    for index in pool.post_order(time.monotonic()):
        asr_url = pool.replicas[index].url
        url = f"{asr_url}/transcribe"
        try:
            response = await client.post(url, files=files, timeout=TIMEOUT)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing sent: the next replica may
            pool.mark_down(index, time.monotonic())
            refused.append(f"{asr_url} ({exc!r})")
            continue
        except httpx.TimeoutException as exc:
            raise ProxyError(504, "asr_timeout", f"The ASR server at {asr_url} did not answer in time ({exc!r}).") from exc
        except httpx.HTTPError as exc:
            raise ProxyError(502, "asr_unreachable",
                             f"The ASR server at {asr_url} broke off the request: {exc!r}. (inv status)") from exc
        return _answer(response, url)
    raise ProxyError(
        502,
        "asr_unreachable",
        f"Could not reach the ASR server at {'; '.join(refused)}. Is it running? (inv status)",
    )


def _answer(response: httpx.Response, url: str) -> dict:
    """ASR's JSON, or the ProxyError its failure maps to."""
    if response.is_success:
        try:
            return response.json()
        except ValueError as exc:
            raise ProxyError(502, "asr_bad_response", f"{url} answered with non-JSON: {response.text[:200]!r}") from exc
    code, detail = _upstream_error(response)
    # A 4xx is about the audio the user sent (wrong format, empty file), a 503 means "not ready yet":
    # pass both on as they are; any other failure of the ASR server is a bad gateway.
    status = response.status_code if 400 <= response.status_code < 500 or response.status_code == 503 else 502
    error = ProxyError(status, "asr_error", f"ASR server answered {response.status_code}: {detail}")
    error.body["asr_error"] = code
    raise error
