"""The AudioSet release as Google publishes it: where each file lives, what it must be (size, sha256 where
known), and which build flag a release folder fills in. Pure Python: no Beam, no network.

Checksums: ``features.tar.gz`` as stated by two independent download scripts (the issue that asked for this
command); the CSVs, class index, ontology and ``mid_to_display_name.tsv`` as the byte copies in
/work/shared/data/audioset (SOURCES.md: identical in several unrelated repositories). Files without a known
checksum are checked against the length the server announces and by their format (release_formats.py: a
segment CSV's row count against its ``num_segs``, the strong TSVs' header, no HTML page, valid UTF-8, a
final newline), and recorded with the sha256 computed here.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable, Iterable, Iterator

from transforms.core import release_formats

MIRRORS = ('us', 'eu', 'asia')
GOOGLE_BASE = 'https://storage.googleapis.com/{mirror}_audioset/youtube_corpus'
ONTOLOGY_URL = 'https://raw.githubusercontent.com/audioset/ontology/master/ontology.json'
TARBALL = 'features.tar.gz'
# The files of AudioSet Strong, by role: ``train`` and ``eval`` are the strong splits (schema.STRONG_SPLITS).
STRONG_FILE_ROLES = {'train': 'audioset_train_strong.tsv', 'eval': 'audioset_eval_strong.tsv',
                     'framed': 'audioset_eval_strong_framed_posneg.tsv', 'names': 'mid_to_display_name.tsv'}
STRONG_FILES = tuple(STRONG_FILE_ROLES.values())
QA_FILES = ('qa_true_counts.csv', 'rerated_video_ids.txt')
SEGMENT_CSVS = ('eval_segments.csv', 'balanced_train_segments.csv', 'unbalanced_train_segments.csv')


@dataclasses.dataclass(frozen=True)
class ReleaseFile:
    """One published file: its name in the destination folder, its path under the Google base URL (None:
    the ontology, from GitHub), its group, and what it must be when known."""
    name: str
    path: str | None
    group: str                  # 'metadata', 'features', 'qa' or 'strong'
    size: int | None = None
    sha256: str | None = None

    def url(self, mirror: str = 'us', base_url: str | None = None) -> str:
        """The official URL, or under ``base_url`` (a mirror of your own, a test server): the same relative
        path, and ``<base_url>/ontology.json`` for the ontology."""
        if base_url:
            return f'{base_url.rstrip("/")}/{self.path or self.name}'
        if self.path is None:
            return ONTOLOGY_URL
        if mirror not in MIRRORS:
            raise ValueError(f'mirror must be one of {", ".join(MIRRORS)}, got {mirror!r}')
        return f'{GOOGLE_BASE.format(mirror=mirror)}/{self.path}'


FILES = (
    ReleaseFile('eval_segments.csv', 'v1/csv/eval_segments.csv', 'metadata', 1143389,
                'f7055f53935f70e74e39494a5c8c4c78f1700fce275028bd36e31186f33d45db'),
    ReleaseFile('balanced_train_segments.csv', 'v1/csv/balanced_train_segments.csv', 'metadata', 1211931,
                '3b83e5ff9ed72cfda37d4e36ce08250e107c1ea70f109f6ab6668ac200db5e94'),
    ReleaseFile('unbalanced_train_segments.csv', 'v1/csv/unbalanced_train_segments.csv', 'metadata'),
    ReleaseFile('class_labels_indices.csv', 'v1/csv/class_labels_indices.csv', 'metadata', 14675,
                'cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429'),
    ReleaseFile('ontology.json', None, 'metadata', 342780,
                '9c685f4403eecc3ca9be37fd7285cf212feaaea6ff7229d3e7ca89e0d1f2d15d'),
    ReleaseFile(TARBALL, f'v1/features/{TARBALL}', 'features', None,
                'cd95d500ab2422d4233cb822e25cf73033633e2068eab64d39024e85125cb760'),
    ReleaseFile('qa_true_counts.csv', 'v1/qa/qa_true_counts.csv', 'qa'),
    ReleaseFile('rerated_video_ids.txt', 'v1/qa/rerated_video_ids.txt', 'qa'),
    ReleaseFile('audioset_train_strong.tsv', 'strong/audioset_train_strong.tsv', 'strong'),
    ReleaseFile('audioset_eval_strong.tsv', 'strong/audioset_eval_strong.tsv', 'strong'),
    ReleaseFile('audioset_eval_strong_framed_posneg.tsv', 'strong/audioset_eval_strong_framed_posneg.tsv', 'strong'),
    ReleaseFile('mid_to_display_name.tsv', 'strong/mid_to_display_name.tsv', 'strong', 10477,
                '6aeaa2144223933eab75566ca478366ad80e59f381611e308cbe536913d7ddf7'),
)


def select(groups: Iterable[str]) -> list[ReleaseFile]:
    """The files of ``groups`` ('metadata' always), in table order."""
    wanted = {'metadata', *groups}
    return [f for f in FILES if f.group in wanted]


def verify(f: ReleaseFile, size: int, sha256: str, announced: int | None = None,
           format_problem: str | None = None) -> str | None:
    """Why a downloaded file is not ``f``, or None: its size against the length the server announced, its
    format (``format_problem``, from ``inspect``), its size and sha256 against the release's known ones."""
    if announced is not None and size != announced:
        return f'{size:,} bytes, but the server\'s Content-Length says {announced:,} (a cut or altered download)'
    if format_problem:
        return f'not {f.name} as released: {format_problem}'
    if f.size is not None and size != f.size:
        return f'{size:,} bytes, but the release says {f.size:,} (a cut or altered download)'
    if f.sha256 and sha256 != f.sha256:
        return f'sha256 {sha256}, expected {f.sha256}'
    return None


def verified_by(f: ReleaseFile) -> str:
    """What proves a file of the release whole once ``verify`` passed: 'sha256', else 'format'."""
    return 'sha256' if f.sha256 else 'format'


def sha256_of(read: Callable[[int], bytes], chunk: int = 8 << 20) -> tuple[int, str]:
    """(bytes, hex sha256) of everything ``read`` returns."""
    h, n = hashlib.sha256(), 0
    while data := read(chunk):
        h.update(data)
        n += len(data)
    return n, h.hexdigest()


def inspect(name: str, read: Callable[[int], bytes], chunk: int = 8 << 20) -> tuple[int, str, str | None]:
    """(bytes, hex sha256, format problem or None) of everything ``read`` returns, in one pass: the file is
    read once however large, and to its end even when its format fails early (the sha256 is of all of it)."""
    h, n = hashlib.sha256(), 0

    def chunks() -> Iterator[bytes]:
        nonlocal n
        while data := read(chunk):
            h.update(data)
            n += len(data)
            yield data

    stream = chunks()
    problem = release_formats.problem(name, stream)
    for _ in stream:    # what the format check did not need still counts in the sha256
        pass
    return n, h.hexdigest(), problem


def release_flags(folder: str, exists: Callable[[str], bool]) -> dict[str, str]:
    """Build flags a release folder fills in (flag name -> value), from the files ``exists`` finds in it:
    ``features_dir`` (the folder: its features.tar.gz or unpacked audioset_v1_embeddings/ is found by the
    reader), ``segments_dir``, ``class_index``, ``ontology``, ``label_quality`` (qa_true_counts.csv) and
    ``strong_labels`` (the folder, when it holds a strong-label TSV)."""
    base = folder.rstrip('/')

    def at(name: str) -> str:
        return f'{base}/{name}'

    flags = {'features_dir': base, 'segments_dir': base}
    for flag, name in (('class_index', 'class_labels_indices.csv'), ('ontology', 'ontology.json'),
                       ('label_quality', 'qa_true_counts.csv')):
        if exists(at(name)):
            flags[flag] = at(name)
    if any(exists(at(n)) for n in STRONG_FILES[:3]):
        flags['strong_labels'] = base
    return flags
