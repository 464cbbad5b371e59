"""What an attempt can end in, and how a yt-dlp or ffmpeg error message maps to one of those statuses.

Permanent statuses (the video is gone, private, geo-blocked, age-gated) are never retried: asking again
only costs YouTube's patience. Transient ones (rate limits, 5xx, timeouts, broken transfers, bad clips)
are retried with backoff, and a rerun tries them again.
"""
from __future__ import annotations

import re

OK = 'ok'
UNAVAILABLE = 'unavailable'    # unavailable, age-gated, live/premiere, DRM
PRIVATE = 'private'            # private or members-only
REMOVED = 'removed'            # removed by the uploader or YouTube, terminated account, HTTP 404/410
GEO = 'geo'                    # not available in the country the request came from
RATE_LIMITED = 'rate_limited'  # HTTP 429, "not a bot" checks, session rate limits
ERROR = 'error'                # anything else: 5xx, timeouts, truncated transfers, clips of the wrong length

STATUSES = (OK, UNAVAILABLE, PRIVATE, REMOVED, GEO, RATE_LIMITED, ERROR)
PERMANENT = frozenset({UNAVAILABLE, PRIVATE, REMOVED, GEO})
TRANSIENT = frozenset({RATE_LIMITED, ERROR})
FINISHED = PERMANENT | {OK}


class FetchError(Exception):
    """A failed attempt, already classified. ``retry_after_s`` is the server's Retry-After, when given."""

    def __init__(self, status: str, message: str, retry_after_s: float | None = None):
        if status not in STATUSES or status == OK:
            raise ValueError(f'not a failure status: {status!r}')
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT


# Checked in order; the first match wins. Wording from yt-dlp's YouTube extractor and ffmpeg's http.c.
# Rate limits come first: "Sign in to confirm you're not a bot" must not read as a login wall.
_RULES: tuple[tuple[str, re.Pattern], ...] = tuple((status, re.compile(pattern, re.I)) for status, pattern in (
    (RATE_LIMITED, r"\b429\b|too many requests|not a bot|captcha|rate.?limit|try again later"),
    (GEO, r"in your country|your location|geo.?restrict|blocked it in your country"),
    (PRIVATE, r"private video|video is private|members.?only|join this channel|premium members"),
    (REMOVED, r"has been removed|been terminated|no longer available|account associated with this video|"
              r"copyright grounds|violating youtube|HTTP Error (404|410)\b|Server returned 404|404 Not Found|"
              r"\b410 Gone"),
    (UNAVAILABLE, r"confirm your age|age.?restricted|inappropriate for some users|video unavailable|"
                  r"video is (not|no longer) available|video isn.t available|this live event|premieres in|"
                  r"live stream recording is not available|drm protected"),
))
# Not above, on purpose: "Requested format is not available" and "No video formats found" are what a
# machine without a JavaScript runtime, or one YouTube is blocking, gets for every video. They stay
# transient errors, so a misconfigured run cannot mark good videos as permanently gone.


def classify(message: str, http_status: int | None = None) -> str:
    """The status of a failure, from its message and, when known, the HTTP status behind it.

    >>> classify('ERROR: [youtube] x: Private video. Sign in if you\\'ve been granted access to this video')
    'private'
    >>> classify('unable to download video data: HTTP Error 503: Service Unavailable')
    'error'
    """
    if http_status == 429:
        return RATE_LIMITED
    if http_status in (404, 410):
        return REMOVED
    if http_status is not None and (http_status >= 500 or http_status in (403, 408)):
        # A 5xx says nothing about the video; 403 on YouTube media URLs is usually an expired or
        # throttled URL. Both deserve another try, not a verdict.
        return ERROR
    for status, pattern in _RULES:
        if pattern.search(message):
            return status
    return ERROR
