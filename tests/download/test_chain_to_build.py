"""The whole loop on loopback: build -> missing_features -> download_audio -> build --audio -> fewer missing."""
from __future__ import annotations

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipelines import build_dataset, download_audio
from tests.download import media_files
from tests.download.test_download_e2e import CONTENT_TYPE, FAST
from tests.accounting import from_output
from tests.fixtures import build_args, copy_sample
from transforms.core.vggish import write_random_weights


def test_downloaded_clips_feed_the_embedding_stage(tmp_path, server):
    inputs = copy_sample(tmp_path / 'in', splits=('eval',), shards_per_split=3)
    first = build_dataset.run(build_args(inputs, tmp_path / 'out1'))
    missing = pq.read_table(tmp_path / 'out1' / 'missing_features' / 'split=eval' / 'part-00000.parquet')
    assert missing.num_rows == first['csv']['eval']['rows_missing_features'] > 2
    # two segments to fetch: the earliest ones, so a short source covers them
    wanted = missing.filter(ds.field('start_time_seconds') == 0.0).slice(0, 2).to_pylist()
    source = media_files.make(tmp_path / 'tone.webm', 'webm', seconds=12)
    for row in wanted:
        server.add(row['video_id'], data=source, content_type=CONTENT_TYPE['webm'])
    audio = tmp_path / 'audio'
    summary = download_audio.run(['--segments_csv', _csv(tmp_path / 'wanted.csv', wanted),
                                  '--audio_dir', str(audio), '--url_template', server.url_template, *FAST])
    assert summary.statuses == {'ok': 2}
    weights = write_random_weights(str(tmp_path / 'weights'))
    second = build_dataset.run(build_args(inputs, tmp_path / 'out2', '--audio', str(audio),
                                          '--vggish_checkpoint', weights.checkpoint,
                                          '--vggish_pca_params', weights.pca_params))
    assert second['audio']['embedded'] == 2 and from_output(tmp_path / 'out2')['audio']['computed'] == 2
    assert second['csv']['eval']['rows_missing_features'] == first['csv']['eval']['rows_missing_features'] - 2
    computed = ds.dataset(tmp_path / 'out2' / 'clips', partitioning='hive').to_table(
        filter=(ds.field('embedding_source') == 'computed') & ds.field('is_primary')).to_pylist()
    assert sorted((r['video_id'], r['labels']) for r in computed) == sorted(
        (r['video_id'], r['labels']) for r in wanted)


def _csv(path, rows) -> str:
    path.write_text('# YTID, start_seconds, end_seconds, positive_labels\n' + ''.join(
        f'{r["video_id"]}, {r["start_time_seconds"]:.3f}, {r["end_time_seconds"]:.3f}, "{",".join(r["labels"])}"\n'
        for r in rows))
    return str(path)
