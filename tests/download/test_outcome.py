"""Classification of yt-dlp and ffmpeg failures (wording of yt-dlp's YouTube extractor and ffmpeg's http.c)."""
import pytest

from transforms.core.download import outcome
from transforms.core.download.outcome import classify


@pytest.mark.parametrize('message,status', [
    ('ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader', 'removed'),
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed for violating YouTube's Terms of Service",
     'removed'),
    ('ERROR: [youtube] abc: Video unavailable. This video is no longer available because the YouTube account '
     'associated with this video has been terminated.', 'removed'),
    ('ERROR: [youtube] abc: Video unavailable. This video contains content from X, who has blocked it on '
     'copyright grounds', 'removed'),
    ('ERROR: [youtube] abc: Video unavailable', 'unavailable'),
    ('ERROR: [youtube] abc: This video is not available', 'unavailable'),
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", 'private'),
    ('ERROR: [youtube] abc: Join this channel to get access to members-only content like this video', 'private'),
    ('ERROR: [youtube] abc: Video unavailable. The uploader has not made this video available in your country',
     'geo'),
    ('ERROR: [youtube] abc: This video is not available from your location due to geo restriction', 'geo'),
    ('ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.',
     'unavailable'),
    ('ERROR: [youtube] abc: Sign in to confirm you’re not a bot. Use --cookies-from-browser or --cookies',
     'rate_limited'),
    ("ERROR: [youtube] abc: This content isn't available, try again later.", 'rate_limited'),
    ('ERROR: unable to download video data: HTTP Error 429: Too Many Requests', 'rate_limited'),
    ('[http @ 0x55] HTTP error 429 Too Many Requests', 'rate_limited'),
    ('ERROR: [generic] abc: Unable to download webpage: HTTP Error 404: Not Found', 'removed'),
    ('[http @ 0x55] Server returned 404 Not Found', 'removed'),
    ('ERROR: unable to download video data: HTTP Error 503: Service Unavailable', 'error'),
    ('[http @ 0x55] Server returned 5XX Server Error reply', 'error'),
    ('ERROR: unable to download video data: <urlopen error timed out>', 'error'),
    ('ERROR: Downloaded 1000 bytes, expected 2000 bytes', 'error'),
    ('[http @ 0x55] Stream ends prematurely at 1000, should be 2000', 'error'),
    ('ERROR: [youtube] abc: This live event will begin in 3 days.', 'unavailable'),
    # What every video gives without a JS runtime or under a block: never a permanent verdict.
    ('ERROR: [youtube] abc: Requested format is not available. Use --list-formats for a list of available '
     'formats', 'error'),
    ('ERROR: [youtube] abc: No video formats found!', 'error'),
])
def test_messages(message, status):
    assert classify(message) == status


def test_the_http_status_decides_first():
    assert classify('whatever', 429) == 'rate_limited'
    assert classify('whatever', 410) == 'removed'
    assert classify('Video unavailable', 503) == 'error'
    assert classify('Private video', 403) == 'error'  # expired media URLs answer 403: retry, do not give up


def test_statuses_partition():
    assert outcome.PERMANENT | outcome.TRANSIENT | {outcome.OK} == set(outcome.STATUSES)
    assert not outcome.PERMANENT & outcome.TRANSIENT
    assert outcome.FetchError('geo', 'x').permanent and not outcome.FetchError('error', 'x').permanent
    with pytest.raises(ValueError):
        outcome.FetchError('ok', 'not a failure')
