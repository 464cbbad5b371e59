"""End to end on loopback: real yt-dlp (generic extractor) and ffmpeg against a local HTTP server.

The sources are stepped tones (pitch 440 + 100 Hz x second), so each clip's first and last milliseconds
say where it was cut. Nothing here reaches beyond 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipelines import download_audio
from tests.download import media_files
from tests.fixtures import ROOT
from audioset_beam.schema import MISSING_FEATURES
from transforms.core import download

CONTENT_TYPE = {fmt: ct for fmt, (_, _, ct) in media_files.FORMATS.items()}
AUDIO_SUFFIXES = {'.flac', '.wav', '.webm', '.m4a', '.mp3', '.mp4', '.ogg', '.opus', '.mka'}
FAST = ['--rate_limit', '100', '--backoff', '0.02', '--backoff_max', '0.2', '--no_progress', '--timeout', '10']


def ledger_lines(audio_dir) -> list[dict]:
    out = []
    for line in (pathlib.Path(audio_dir) / '_ledger.jsonl').read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a torn line, as a killed run leaves
    return out


def by_segment(lines: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in lines:
        out.setdefault(row['segment_id'], []).append(row)
    return out


def write_missing_features(out: pathlib.Path, rows: dict[str, list[tuple[str, int, int]]]) -> pathlib.Path:
    """A build output folder holding only missing_features/split=<split>/part-00000.parquet."""
    import pyarrow.parquet as pq
    for split, segs in rows.items():
        d = out / 'missing_features' / f'split={split}'
        d.mkdir(parents=True)
        pq.write_table(MISSING_FEATURES.from_pylist([
            {'segment_id': f'{v}_{s * 1000}', 'video_id': v, 'start_time_seconds': float(s),
             'end_time_seconds': float(e), 'labels': ['/m/04rlf'], 'csv_file': f'{split}.csv', 'line_number': i + 4}
            for i, (v, s, e) in enumerate(segs)]), d / 'part-00000.parquet')
    return out


def write_csv(path: pathlib.Path, segs: list[tuple[str, int, int]]) -> str:
    header = (f'# Segments csv\n# num_ytids={len(segs)}, num_segs={len(segs)}\n'
              '# YTID, start_seconds, end_seconds, positive_labels\n')
    path.write_text(header + ''.join(f'{v}, {s}.000, {e}.000, "/m/04rlf"\n' for v, s, e in segs))
    return str(path)


def check_clip(path: pathlib.Path, start: int, end: int, rate: int, exact: bool) -> None:
    """Mono, native rate, exactly end - start long, and cut where the segment is (to the sample when exact)."""
    x, got_rate, channels = media_files.decode(path)
    assert (got_rate, channels, len(x)) == (rate, 1, (end - start) * rate)
    assert media_files.pitch_near_start(x, rate) == pytest.approx(media_files.pitch_at(start), abs=40)
    assert media_files.pitch_near_end(x, rate) == pytest.approx(media_files.pitch_at(end - 1), abs=40)
    if exact:
        assert abs(media_files.start_offset(x, rate, start)) <= 1  # one sample of phase-estimation noise
    # Left at 0.8, right at 0.4: their average is a 0.6 sine, RMS 0.42 (left alone: 0.57, their sum: 0.85).
    assert 0.38 < float(np.sqrt(np.mean(x[rate:-rate] ** 2))) < 0.47


EVAL = [
    ('-abc_def-12', 10, 20),   # webm: ffmpeg seeks and reads only the segment
    ('a_b_c_d_e_f', 0, 10),    # m4a: read from the start, exact
    ('mp3_clip-01', 19, 29),   # mp3 at 22.05 kHz
    ('removed0001', 0, 10),    # 404
    ('ratelimited', 5, 15),    # 429, 429, then the file
    ('norange0001', 3, 13),    # range requests refused: the whole stream is downloaded instead
    ('truncated01', 10, 20),   # every body cut short
    ('short000001', 0, 10),    # the video is 5 s long
]


def test_fetch_classify_retry_and_resume(tmp_path, server, sources):
    for ytid, fmt in [('-abc_def-12', 'webm'), ('a_b_c_d_e_f', 'm4a'), ('mp3_clip-01', 'mp3'),
                      ('bal_only_01', 'webm')]:
        server.add(ytid, data=sources[fmt], content_type=CONTENT_TYPE[fmt])
    server.add('removed0001', always=404)
    server.add('ratelimited', data=sources['webm'], content_type='audio/webm', statuses=[429, 429])
    server.add('norange0001', data=sources['m4a'], content_type='audio/mp4', refuse_ranges=True)
    server.add('truncated01', data=sources['m4a'], content_type='audio/mp4', truncate=-1)
    server.add('short000001', data=sources['short'], content_type='audio/webm')
    build = write_missing_features(tmp_path / 'build', {'eval': EVAL, 'balanced_train': [('bal_only_01', 20, 30)]})
    audio = tmp_path / 'audio'
    argv = ['--missing_features', str(build), '--splits', 'eval', '--audio_dir', str(audio),
            '--url_template', server.url_template, '--max_attempts', '3', '--concurrency', '2', *FAST]

    summary = download_audio.run(argv)

    assert summary.selected == 8 and summary.skipped == 0 and not summary.interrupted
    assert summary.statuses == {'ok': 5, 'removed': 1, 'error': 2}
    assert summary.unfinished == 2
    assert not server.hits_for('bal_only_01')  # --splits eval
    lines = by_segment(ledger_lines(audio))
    assert [r['status'] for r in lines['removed0001_0']] == ['removed']  # permanent: asked once
    assert len(server.hits_for('removed0001')) == 1
    assert [(r['status'], r['attempts']) for r in lines['ratelimited_5000']] == [
        ('rate_limited', 1), ('rate_limited', 2), ('ok', 3)]
    assert [r['status'] for r in lines['truncated01_10000']] == ['error'] * 3
    assert all('expected 10.000 s' in r['message'] for r in lines['short000001_0'])
    assert len(lines['short000001_0']) == 3
    norange = lines['norange0001_3000'][-1]
    assert norange['fetch'] == 'whole' and 'section read failed' in norange['message']
    assert lines['-abc_def-12_10000'][-1]['fetch'] == 'section'
    # ffmpeg jumped into the file rather than reading it from the start.
    assert any(h.range and int(h.range[6:].split('-')[0]) > 100_000 for h in server.hits_for('-abc_def-12'))

    # Exactly the good clips, each verified, hashed as the ledger says; no partial or temporary file.
    names = {p.name for p in audio.iterdir()}
    ok = {seg: rows[-1] for seg, rows in lines.items() if rows[-1]['status'] == 'ok'}
    assert names == {'_ledger.jsonl'} | {pathlib.Path(r['path']).name for r in ok.values()}
    for row in ok.values():
        path = pathlib.Path(row['path'])
        assert path.parent == audio.resolve()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row['sha256']
        ytid, start, end = download.parse_clip_name(path.name)
        assert (ytid, start, end) == (row['ytid'], row['start'], row['end'])
    rates = {'-abc_def-12': 48000, 'a_b_c_d_e_f': 44100, 'mp3_clip-01': 22050, 'ratelimited': 48000,
             'norange0001': 44100}
    for ytid, start, end in EVAL:
        if ytid in rates:
            # Matroska read by seeking is exact to its 1 ms timestamps; everything else to the sample.
            exact = ytid not in ('-abc_def-12', 'ratelimited')
            check_clip(audio / download.clip_name(ytid, start * 1000, end * 1000), start, end, rates[ytid], exact)

    # Rerun: finished and permanently failed segments are skipped; the transient failures are retried.
    before = {ytid: len(server.hits_for(ytid)) for ytid, _, _ in EVAL}
    server.set('truncated01', truncate=0)
    again = download_audio.run(argv)
    assert again.skipped == 6 and again.statuses == {'ok': 6, 'removed': 1, 'error': 1}
    assert again.this_run == {'ok': 1, 'error': 1}
    for ytid, _, _ in EVAL:
        if ytid not in ('truncated01', 'short000001'):
            assert len(server.hits_for(ytid)) == before[ytid], ytid
    fixed = by_segment(ledger_lines(audio))['truncated01_10000'][-1]
    assert (fixed['status'], fixed['attempts']) == ('ok', 4)  # attempts count over runs
    check_clip(pathlib.Path(fixed['path']), 10, 20, 44100, exact=True)

    # --retry asks again for segments that failed permanently (say, after adding cookies or a proxy).
    hits = len(server.hits_for('removed0001'))
    third = download_audio.run(argv + ['--retry', 'removed'])
    assert third.this_run == {'removed': 1, 'error': 1} and len(server.hits_for('removed0001')) == hits + 1
    assert by_segment(ledger_lines(audio))['removed0001_0'][-1]['attempts'] == 2


def test_killed_run_resumes_without_refetching(tmp_path, server, sources):
    segs = [('-kill_me_01', 0, 10), ('kill_me_02_', 10, 20), ('kill-me-03-', 5, 15), ('kill_me__04', 20, 30)]
    for ytid, _, _ in segs:
        server.add(ytid, data=sources['webm'], content_type='audio/webm', delay_s=0.4)
    csv = write_csv(tmp_path / 'eval_segments.csv', segs)
    audio = tmp_path / 'audio'
    argv = ['--segments_csv', csv, '--audio_dir', str(audio), '--url_template', server.url_template,
            '--concurrency', '1', *FAST]
    cmd = [sys.executable, '-m', 'pipelines.download_audio', *argv]
    # Its own session, so that killing it also kills its ffmpeg children.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            ledger = audio / '_ledger.jsonl'
            if ledger.exists() and '"status": "ok"' in ledger.read_text():
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
    done_before = {r['ytid'] for r in ledger_lines(audio) if r['status'] == 'ok'}
    assert 1 <= len(done_before) < len(segs)
    # What the kill left: complete clips under their final names, and under _tmp/ nothing that a reader
    # globbing for audio would take for a clip.
    for path in audio.rglob('*'):
        if path.is_file() and path.parent == audio and path.suffix == '.flac':
            ytid, start, end = download.parse_clip_name(path.name)
            check_clip(path, int(start), int(end), 48000, exact=False)
        elif path.is_file():
            assert path.name == '_ledger.jsonl' or path.suffix not in AUDIO_SUFFIXES, path
    hits_before = {ytid: len(server.hits_for(ytid)) for ytid, _, _ in segs}
    for ytid, _, _ in segs:
        server.set(ytid, delay_s=0)

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f'finished before this run: {len(done_before)}' in rerun.stdout
    assert 'all selected, by latest status: ok 4' in rerun.stdout
    for ytid in done_before:
        assert len(server.hits_for(ytid)) == hits_before[ytid], f'{ytid} was fetched again'
    lines = by_segment(ledger_lines(audio))
    assert all([r['status'] for r in rows].count('ok') == 1 for rows in lines.values())
    assert sorted(p.name for p in audio.iterdir()) == sorted(
        ['_ledger.jsonl'] + [download.clip_name(v, s * 1000, e * 1000) for v, s, e in segs])
    for ytid, start, end in segs:
        check_clip(audio / download.clip_name(ytid, start * 1000, end * 1000), start, end, 48000, exact=False)


def test_crash_leftovers_are_adopted_or_cleaned(tmp_path, server, sources):
    segs = [('adopt_me_01', 0, 10), ('junk_at_end', 0, 10)]
    for ytid, _, _ in segs:
        server.add(ytid, data=sources['mp3'], content_type='audio/mpeg')
    audio = tmp_path / 'audio'
    argv = ['--segments_csv', write_csv(tmp_path / 'eval_segments.csv', segs), '--audio_dir', str(audio),
            '--url_template', server.url_template, *FAST]
    assert download_audio.run(argv).statuses == {'ok': 2}
    # Now fake a crash: no ledger line made it to disk but a torn one, the first clip is complete at its
    # final name, the second clip's file is garbage, and a dead attempt left a partial file behind.
    rows = ledger_lines(audio)
    good = next(r for r in rows if r['ytid'] == 'adopt_me_01')
    (audio / '_ledger.jsonl').write_text(json.dumps(good)[:30])
    junk = audio / download.clip_name('junk_at_end', 0, 10000)
    junk.write_bytes(b'not a flac')
    (audio / '_tmp' / 'attempt-dead').mkdir(parents=True)
    (audio / '_tmp' / 'attempt-dead' / 'clip.flac').write_bytes(b'partial')
    hits = {ytid: len(server.hits_for(ytid)) for ytid, _, _ in segs}

    summary = download_audio.run(argv)

    assert summary.statuses == {'ok': 2} and summary.attempts == 1
    latest = {r['ytid']: r for r in ledger_lines(audio)[-2:]}
    assert latest['adopt_me_01']['fetch'] == 'existing' and latest['adopt_me_01']['sha256'] == good['sha256']
    assert len(server.hits_for('adopt_me_01')) == hits['adopt_me_01']  # verified, not fetched
    assert len(server.hits_for('junk_at_end')) > hits['junk_at_end']   # garbage replaced
    check_clip(junk, 0, 10, 22050, exact=True)
    assert not (audio / '_tmp').exists()


def test_bucket_destination_through_the_storage_emulator(tmp_path, server, sources, monkeypatch):
    emulator = pytest.importorskip('gcp_storage_emulator.server')
    import socket

    from transforms import download_upload
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    gcs = emulator.create_server('127.0.0.1', port, in_memory=True, default_bucket='bkt')
    gcs.start()
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', f'http://127.0.0.1:{port}')
    monkeypatch.setattr(download_upload, '_client', None)
    try:
        server.add('in_bucket01', data=sources['webm'], content_type='audio/webm')
        server.add('removed0002', always=404)
        csv = write_csv(tmp_path / 'eval_segments.csv', [('in_bucket01', 10, 20), ('removed0002', 0, 10)])
        argv = ['--segments_csv', csv, '--audio_dir', 'gs://bkt/audioset/audio', '--url_template', server.url_template,
                *FAST]
        summary = download_audio.run(argv + ['--staging_dir', str(tmp_path / 'staging1')])
        assert summary.statuses == {'ok': 1, 'removed': 1}
        objects = download_upload.list_files('gs://bkt/audioset/audio')
        clip = 'gs://bkt/audioset/audio/in_bucket01_10.000_20.000.flac'
        assert objects == ['gs://bkt/audioset/audio/_ledger.jsonl', clip]
        rows = [json.loads(line) for line in download_upload.read_bytes(objects[0]).splitlines()]
        ok = next(r for r in rows if r['status'] == 'ok')
        assert ok['path'] == clip
        data = download_upload.read_bytes(clip)
        assert hashlib.sha256(data).hexdigest() == ok['sha256']
        assert not list((tmp_path / 'staging1').glob('*.flac'))  # uploaded, then removed locally
        (tmp_path / 'clip.flac').write_bytes(data)
        check_clip(tmp_path / 'clip.flac', 10, 20, 48000, exact=False)

        # Another machine (a fresh staging folder) resumes from the bucket's ledger.
        hits = len(server.hits_for('in_bucket01'))
        again = download_audio.run(argv + ['--staging_dir', str(tmp_path / 'staging2')])
        assert again.skipped == 2 and again.attempts == 0
        assert len(server.hits_for('in_bucket01')) == hits
    finally:
        gcs.stop()


def test_cookies_and_proxy_reach_yt_dlp_and_ffmpeg(tmp_path, server, sources, monkeypatch):
    for var in ('no_proxy', 'NO_PROXY', 'http_proxy', 'HTTP_PROXY'):
        monkeypatch.delenv(var, raising=False)
    import socket
    with socket.socket() as s:  # an origin nobody listens on: only the proxy can answer
        s.bind(('127.0.0.1', 0))
        dead_port = s.getsockname()[1]
    server.add('via_proxy_1', data=sources['webm'], content_type='audio/webm')
    cookies = tmp_path / 'cookies.txt'
    cookies.write_text('# Netscape HTTP Cookie File\n'
                       f'127.0.0.1\tFALSE\t/\tFALSE\t{int(time.time()) + 86400}\tsession\tsecret-1\n')
    before = cookies.read_bytes()
    proxy = server.url_template.split('/v/')[0]
    audio = tmp_path / 'audio'
    summary = download_audio.run([
        '--segments_csv', write_csv(tmp_path / 'eval_segments.csv', [('via_proxy_1', 10, 20)]),
        '--audio_dir', str(audio), '--url_template', f'http://127.0.0.1:{dead_port}/v/{{ytid}}',
        '--proxy', proxy, '--cookies', str(cookies), *FAST])
    assert summary.statuses == {'ok': 1}
    hits = server.hits_for('via_proxy_1')
    assert len(hits) >= 2 and all(h.via_proxy for h in hits)
    assert all(h.cookie and 'session=secret-1' in h.cookie for h in hits)
    assert any(h.range for h in hits)  # ffmpeg's reads went through the proxy too, with the cookie
    assert cookies.read_bytes() == before  # yt-dlp wrote to its copy, not to the user's file
    check_clip(audio / 'via_proxy_1_10.000_20.000.flac', 10, 20, 48000, exact=False)


def test_fragmented_streams_are_downloaded_whole(tmp_path, server, sources):
    """HLS: ffmpeg cannot seek in it, so yt-dlp's own fragment downloader fetches the whole stream."""
    src = tmp_path / 'tone.m4a'
    src.write_bytes(sources['m4a'])
    hls = tmp_path / 'hls'
    hls.mkdir()
    subprocess.run([media_files.find_ffmpeg(),
                    '-nostdin', '-loglevel', 'error', '-i', str(src), '-c', 'copy', '-f', 'hls', '-hls_time', '4',
                    '-hls_list_size', '0', '-hls_segment_filename', str(hls / 'hls_stream1_%d.ts'),
                    str(hls / 'index.m3u8')], check=True)
    server.add('hls_stream1', data=(hls / 'index.m3u8').read_bytes(), content_type='application/vnd.apple.mpegurl')
    for ts in hls.glob('*.ts'):
        server.add(ts.name, data=ts.read_bytes(), content_type='video/mp2t')
    audio = tmp_path / 'audio'
    csv = write_csv(tmp_path / 'eval_segments.csv', [('hls_stream1', 10, 20)])
    summary = download_audio.run(['--segments_csv', csv, '--audio_dir', str(audio), '--url_template',
                                  server.url_template, *FAST])
    assert summary.statuses == {'ok': 1}
    (row,) = ledger_lines(audio)
    assert row['fetch'] == 'whole'
    x, rate, channels = media_files.decode(row['path'])
    assert (rate, channels, len(x)) == (44100, 1, 10 * 44100)
    # MPEG-TS cannot say how many priming samples the AAC encoder added, so the stream itself starts
    # ~23 ms late; away from the edges, the pitch still says which seconds were cut.
    assert media_files.dominant_hz(x[int(0.2 * rate):int(0.5 * rate)], rate) == pytest.approx(
        media_files.pitch_at(10), abs=20)
    assert media_files.dominant_hz(x[-int(0.5 * rate):-int(0.2 * rate)], rate) == pytest.approx(
        media_files.pitch_at(19), abs=20)
