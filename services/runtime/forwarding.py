"""One address for clients (DESIGN §12): a write that reached an instance which does not own its
streams is forwarded, as it came, to the instance that does, and the owner's answer is returned.

The owner decides the request again on its own projection (the forwarding instance wrote nothing);
the same Authorization, cookies, CSRF header and Idempotency-Key go along, so the owner authenticates
the same caller and an idempotent retry, to any instance, finds the first answer. A request is
forwarded once: a forwarded request that meets another change of owner gets a 503 (retry), never a
second hop.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from flask import Response, request

from services.runtime.ownership import NotOwner

log = logging.getLogger(__name__)

#: Set on a forwarded request (the forwarding instance's URL, or "1"): never forwarded again.
FORWARDED_HEADER = "X-Baotuan-Forwarded-By"
#: The request headers that go along (what authenticates the caller and makes the write idempotent).
PASSED_ON = ("Authorization", "Cookie", "Idempotency-Key", "Content-Type", "Accept", "Accept-Language",
             "X-CSRF-Token", "Origin", "Referer", "User-Agent")
#: The answer's headers that do not come back (hop by hop, or set again by this server).
DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}

class CannotForward(Exception):
    """The request cannot be forwarded now (the owner is unknown or unreachable, or it was forwarded once)."""


def forward(exc: NotOwner, own_url: str | None, timeout_s: float, store: Any = None) -> Response:
    """Send the current request to the owner named by ``exc`` and return the owner's answer.

    With ``store`` (this instance's projection) a write the owner acknowledged is answered once this instance
    has folded it too (its receipts say where it is): a read sent here right after sees it, as with one instance.
    """
    if request.headers.get(FORWARDED_HEADER):
        raise CannotForward(f"forwarded here by {request.headers[FORWARDED_HEADER]}, but {exc}: ownership is "
                            "moving; retry")
    if not exc.url:
        raise CannotForward(f"{exc}; retry shortly")
    if own_url and exc.url.rstrip("/") == own_url.rstrip("/"):
        raise CannotForward(f"{exc}: this instance, which is taking it over; retry shortly")
    headers = {name: value for name in PASSED_ON if (value := request.headers.get(name)) is not None}
    headers[FORWARDED_HEADER] = own_url or "1"
    # A connection of its own each time: a kept-alive one the owner closed meanwhile (gunicorn closes idle ones
    # after 2 s) fails the request with a reset, and a write cannot be resent blindly.
    headers["Connection"] = "close"
    target = exc.url.rstrip("/") + request.full_path.rstrip("?")
    try:
        answer = requests.request(request.method, target, data=request.get_data(), headers=headers,
                                    timeout=timeout_s + 5, allow_redirects=False)
    except requests.RequestException as err:
        raise CannotForward(f"the owner of {exc.topic}[{exc.partition}], {exc.url}, did not answer: {err}") from err
    log.info("forwarded %s %s to %s: %d", request.method, request.path, exc.url, answer.status_code)
    response = Response(answer.content, status=answer.status_code)
    for name, value in answer.raw.headers.items() if answer.raw is not None else answer.headers.items():
        if name.lower() not in DROPPED:
            response.headers.add(name, value)
    response.headers["X-Baotuan-Answered-By"] = exc.url
    if store is not None and 200 <= answer.status_code < 300:
        targets = _written(answer)
        if targets and not store.wait_until(targets, timeout_s):
            log.warning("forwarded write acknowledged by %s but not folded here within %.0fs", exc.url, timeout_s)
    return response


def _written(answer: requests.Response) -> dict[tuple[str, int], int]:
    """Where the events of an acknowledged write are, from its receipts: {(topic, partition): next offset}."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    targets: dict[tuple[str, int], int] = {}
    receipts = body.get("receipts") if isinstance(body, dict) else None
    for receipt in receipts if isinstance(receipts, list) else []:
        try:
            place, offset = (str(receipt["topic"]), int(receipt["partition"])), int(receipt["offset"])
        except (KeyError, TypeError, ValueError):
            continue
        targets[place] = max(targets.get(place, 0), offset + 1)
    return targets
