"""Clip names: written from integer milliseconds, parsed from the right (ids hold '_' and start with '-')."""
import pytest

from audioset_beam import layout
from transforms.core.download import ClipName, clip_name, parse_clip_name
from transforms.core.download.naming import format_seconds


@pytest.mark.parametrize('ytid', ['--4gqARaEJE', '-abc_def-12', 'a_b_c_d_e_f', '___________', 'Zz9-_'])
@pytest.mark.parametrize('start_ms,end_ms', [(0, 10000), (30000, 40000), (1500, 2750), (123456789, 123466789)])
def test_round_trip(ytid, start_ms, end_ms):
    name = clip_name(ytid, start_ms, end_ms)
    got = parse_clip_name(name)
    assert got == (ytid, start_ms / 1000, end_ms / 1000)
    assert (got.start_ms, got.end_ms) == (start_ms, end_ms)
    assert got.segment_id == f'{ytid}_{start_ms}'
    assert parse_clip_name('gs://bucket/audio/' + name) == got
    assert parse_clip_name(name[:-len('.flac')]) == got
    # The embedding stage reads these names with layout.parse_clip_name: it must agree.
    assert layout.parse_clip_name('gs://bucket/audio/' + name) == tuple(got)


def test_the_documented_form():
    assert clip_name('--4gqARaEJE', 30000, 40000) == '--4gqARaEJE_30.000_40.000.flac'
    ytid, start, end = parse_clip_name('/data/-abc_def-12_30.000_40.000.flac')
    assert (ytid, start, end) == ('-abc_def-12', 30.0, 40.0)
    assert isinstance(parse_clip_name('x_0.000_1.000'), ClipName)
    assert [format_seconds(ms) for ms in (0, 1, 999, 1000, 61001)] == ['0.000', '0.001', '0.999', '1.000', '61.001']


@pytest.mark.parametrize('bad', ['abc.flac', 'abc_30_40.flac', 'abc_30.0_40.0.flac', '_30.000_40.000.flac',
                                 'a b_30.000_40.000.flac', 'abc_40.000_30.000.flac', 'abc_-1.000_3.000.flac'])
def test_rejects_what_it_would_not_write(bad):
    with pytest.raises(ValueError):
        parse_clip_name(bad)


def test_clip_name_validates():
    with pytest.raises(ValueError):
        clip_name('bad/id', 0, 1000)
    with pytest.raises(ValueError):
        clip_name('abc', 1000, 1000)
