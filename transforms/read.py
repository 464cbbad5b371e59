"""ReadShards: TFRecord shards (local or gs://) to parsed AudioSet records, damage to dead letters.
ReadTarball: the release tarball (local, gs:// or https://), streamed by one reader into shard groups that
ReadShards then parses in parallel. ``resolve_features`` says which of the two a --features_dir is."""
from __future__ import annotations

import dataclasses
import logging
import os
import stat
import time
from typing import Iterable, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam import PCollection
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from audioset_beam import layout
from transforms import fileio
from transforms.coders import BatchCoder
from transforms.core import deadletter, release_tar, stats, tfrecord
from transforms.core.deadletter import Stage
from transforms.core.sequence_example import Records, parse_records
from transforms.deadletters import DEAD_LETTERS, STATS, tag_dead_letters

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ShardGroup:
    """Shards of one split read by one worker call, so parsing and writing work on large batches.
    ``spill``: for shards from a tarball (``paths`` are then ``tarball:member``), the file the tarball reader
    wrote them to, concatenated, and each one's end offset."""
    group_id: int
    split: str
    paths: tuple[str, ...]
    spill: tuple[str, tuple[int, ...]] | None = None

    @property
    def nbytes(self) -> int:
        return 100 * len(self.paths)


beam.coders.registry.register_coder(ShardGroup, BatchCoder)


@dataclasses.dataclass(frozen=True)
class FeatureSource:
    """What a --features_dir is: a shard tree (``root`` holding split folders; ``folders`` the split folders
    to read) or a release tarball (``tarball``)."""
    given: str
    root: str | None = None
    folders: tuple[str, ...] = tuple(layout.FEATURE_FOLDERS)
    tarball: str | None = None

    @property
    def form(self) -> str:
        if self.tarball:
            return 'tarball'
        return 'split folder' if len(self.folders) == 1 else 'shard tree'


class FeaturesError(ValueError):
    """A --features_dir that is none of the accepted forms; the message says what it holds and a hint.
    ``empty``: a folder with no shards at all (fine when the build embeds audio instead)."""

    def __init__(self, message: str, empty: bool = False):
        super().__init__(message)
        self.empty = empty


def _local_shards(directory: str) -> bool:
    try:
        return any(e.name.endswith('.tfrecord') for e in os.scandir(directory))
    except OSError:
        return False


def _local_tree(path: str) -> tuple[str, ...]:
    return tuple(f for f in layout.FEATURE_FOLDERS if _local_shards(os.path.join(path, f)))


def _sniff_tar(path: str) -> bool:
    try:
        with open(path, 'rb') as f:
            head = f.read(BLOCK_SNIFF)
    except OSError:
        return False
    return head.startswith(b'\x1f\x8b') or head[257:262] == b'ustar'


BLOCK_SNIFF = 512
TARBALL_NAME = 'features.tar.gz'
# No released shard comes near this (the largest is a few MB); a member declaring more is not held.
MAX_MEMBER_BYTES = 256 << 20


def _records_in_bytes(nbytes: int) -> int:
    """Records that ``nbytes`` of shard data hold, estimated at the release's mean framed record size
    (0 only for 0 bytes: a loss is never counted as one record by default)."""
    return -(-max(0, nbytes) // tfrecord.DEFAULT_RECORD_BYTES)


def resolve_features(path: str) -> FeatureSource:
    """Finds the release in ``path``, in any form users have it:

    - the tarball (``features.tar.gz``, any ``*.tar.gz``/``*.tgz``/``*.tar``): a local file, gs:// or
      http(s)://, read as a stream;
    - the unpacked tree at any level: the folder holding ``audioset_v1_embeddings/``, that folder itself (or
      any folder with ``bal_train/``, ``eval/``, ``unbal_train/`` of ``*.tfrecord``), or one split folder
      (then only that split);
    - a folder holding ``features.tar.gz`` (and no unpacked tree).

    Remote paths: the tarball is one object (no listing); a gs:// folder is probed for the tarball by name
    first, and listed (one call per split folder, at most one name each) only when there is none. An
    https:// URL that is not a tarball is taken as a folder holding ``features.tar.gz`` (HTTP cannot list).
    Raises FeaturesError (what is there, and a hint) or FileNotFoundError."""
    p = path.rstrip('/') or path
    if p.startswith(('http://', 'https://')):
        tarball = p if release_tar.is_tar_name(p) else layout.join(p, TARBALL_NAME)
        fileio.size_of(tarball)
        return FeatureSource(path, tarball=tarball)
    if p.startswith('gs://'):
        return _resolve_gcs(path, p)
    if not os.path.exists(p):
        raise FileNotFoundError(2, 'no such file' if release_tar.is_tar_name(p) else 'no such folder', p)
    if os.path.isfile(p):
        if release_tar.is_tar_name(p) or _sniff_tar(p):
            return FeatureSource(path, tarball=p)
        raise FeaturesError(f'{p}: a file that is neither a folder of shards nor a tar archive (give the '
                            f'release\'s {TARBALL_NAME} or the folder unpacked from it)')
    folders = _local_tree(p)
    if folders:
        _refuse_tree_beside_tarball(p, p, folders)
        return FeatureSource(path, root=p, folders=folders)
    inner = os.path.join(p, release_tar.RELEASE_ROOT)
    if os.path.isdir(inner) and (folders := _local_tree(inner)):
        _refuse_tree_beside_tarball(p, inner, folders)
        return FeatureSource(path, root=inner, folders=folders)
    name = os.path.basename(p)
    if name in layout.FEATURE_FOLDERS and _local_shards(p):
        return FeatureSource(path, root=os.path.dirname(p) or '.', folders=(name,))
    if os.path.isfile(os.path.join(p, TARBALL_NAME)):
        return FeatureSource(path, tarball=os.path.join(p, TARBALL_NAME))
    raise FeaturesError(f'{p}: no shards found in bal_train/, eval/ or unbal_train/ (expected the release '
                        f'layout, e.g. {layout.join(p, "eval", "*.tfrecord")}){_local_hint(p)}', empty=True)


def _refuse_tree_beside_tarball(folder: str, root: str, folders: tuple[str, ...]) -> None:
    """A folder holding both the tarball and an unpacked tree: the tree may be an interrupted ``tar xzf``
    (only part of the release), and nothing short of reading the whole tarball tells, so the build asks
    which one is meant instead of silently building the tree. Raises FeaturesError naming both."""
    tarball = os.path.join(folder, TARBALL_NAME)
    if not os.path.isfile(tarball):
        return
    shards = [e.stat().st_size for f in folders for e in os.scandir(os.path.join(root, f))
              if e.name.endswith('.tfrecord') and e.is_file()]
    tar_bytes = os.path.getsize(tarball)
    # An unpacked shard takes at least its bytes plus a 512-byte tar header in the archive, which gzip
    # cannot shrink below ~0.1% of incompressible data: a tree this much smaller is certainly partial.
    partial = sum(shards) + 512 * len(shards) < tar_bytes * 0.999
    why = (f'the unpacked tree ({len(shards):,} shards, {sum(shards):,} bytes) is smaller than the tarball beside '
           f'it ({tar_bytes:,} bytes): an interrupted unpack?' if partial else
           'it holds both the tarball and an unpacked tree, which may be only part of it (an interrupted unpack '
           'looks the same)')
    raise FeaturesError(f'{folder}: {why} Choose one: --features_dir {tarball} (the release as shipped, '
                        f'checked whole as it streams) or --features_dir {root} (the unpacked tree, read as it '
                        'is); or remove the one you do not want.')


def _local_hint(p: str) -> str:
    """A did-you-mean for a folder that holds the release one or two levels down, or loose shards."""
    try:
        children = sorted(e.path for e in os.scandir(p) if e.is_dir())
    except OSError:
        return ''
    for child in children:
        for candidate in (child, os.path.join(child, release_tar.RELEASE_ROOT)):
            if os.path.isdir(candidate) and _local_tree(candidate):
                return f'; this folder holds {os.path.relpath(candidate, p)}/: did you mean {candidate}?'
        if os.path.isfile(os.path.join(child, TARBALL_NAME)):
            return f'; did you mean {os.path.join(child, TARBALL_NAME)}?'
    tars = sorted(n for n in os.listdir(p) if release_tar.is_tar_name(n))
    if tars:
        return f'; this folder holds {tars[0]}: did you mean {os.path.join(p, tars[0])}?'
    if _local_shards(p):
        return ('; the *.tfrecord files here are not in a split folder: the split is taken from the folder '
                'name, so put them in bal_train/, eval/ or unbal_train/ (or name this folder so)')
    return ''


def _resolve_gcs(path: str, p: str) -> FeatureSource:
    if release_tar.is_tar_name(p):
        fileio.size_of(p)
        return FeatureSource(path, tarball=p)
    try:
        fileio.size_of(layout.join(p, TARBALL_NAME))
        return FeatureSource(path, tarball=layout.join(p, TARBALL_NAME))
    except FileNotFoundError:
        pass
    except Exception as e:  # noqa: BLE001 -- a denied probe: try the unpacked layout next
        log.info('%s: cannot probe for %s (%s)', p, TARBALL_NAME, e)
    for root in (p, layout.join(p, release_tar.RELEASE_ROOT)):
        try:
            folders = tuple(f for f in layout.FEATURE_FOLDERS if fileio.gcs_any_object(layout.join(root, f) + '/'))
        except Exception as e:  # noqa: BLE001 -- typically 401/403: the bucket does not allow listing
            raise FeaturesError(f'{p}: cannot list it ({type(e).__name__}: {str(e).splitlines()[0][:200]}); '
                                f'give the tarball instead, e.g. {layout.join(p, TARBALL_NAME)} (one object, '
                                'read with no listing)') from None
        if folders:
            return FeatureSource(path, root=root, folders=folders)
    parent, name = p.rsplit('/', 1)
    if name in layout.FEATURE_FOLDERS and fileio.gcs_any_object(p + '/'):
        return FeatureSource(path, root=parent, folders=(name,))
    raise FeaturesError(f'{p}: no shards found in bal_train/, eval/ or unbal_train/ (expected the release layout, '
                        f'e.g. {layout.join(p, "eval", "*.tfrecord")}), and no {TARBALL_NAME} there', empty=True)


@dataclasses.dataclass
class ShardBatch:
    """The parsed records of a ShardGroup; ``records.position`` indexes ``source_index``/``record_index``."""
    group_id: int
    split: str
    sources: tuple[str, ...]
    records: Records
    source_index: np.ndarray
    record_index: np.ndarray     # -1 where damage earlier in the shard makes the index unknowable
    byte_offset: np.ndarray

    @property
    def nbytes(self) -> int:
        r = self.records
        return r.frames.nbytes + r.label_values.nbytes + 64 * len(r.video_id)


beam.coders.registry.register_coder(ShardBatch, BatchCoder)


def _list_shards(features_dir: str, folder: str) -> list[tuple[str, int]]:
    """(path, size) of every ``*.tfrecord`` entry of a split folder, sorted. Locally this lists every
    entry with that name, not only regular files, so that a directory, FIFO or dangling link named like a
    shard is read (and rejected) rather than silently skipped."""
    directory = layout.join(features_dir, folder)
    if fileio.is_local(directory):
        if not os.path.isdir(directory):
            return []
        found = []
        for entry in os.scandir(directory):
            if entry.name.endswith('.tfrecord'):
                try:
                    size = entry.stat().st_size if entry.is_file() else 0
                except OSError:
                    size = 0
                found.append((os.path.join(directory, entry.name), size))
        return sorted(found)
    pattern = layout.join(directory, '*.tfrecord')
    return sorted((m.path, m.size_in_bytes) for m in FileSystems.match([pattern])[0].metadata_list)


def plan_shard_groups(features_dir: str, target_bytes: int,
                      folders: tuple[str, ...] | None = None) -> tuple[list[ShardGroup], dict]:
    """Lists ``<features_dir>/{eval,bal_train,unbal_train}/*.tfrecord`` (or only ``folders``) and cuts each
    split into groups.

    Groups hold consecutive shards (sorted by name) of about ``target_bytes``, so the plan and thus the
    output are deterministic. Returns the groups and a summary of the inputs per split.
    """
    if target_bytes <= 0:
        raise ValueError(f'target_bytes must be positive, got {target_bytes}')
    groups: list[ShardGroup] = []
    inputs: dict = {}
    for folder, split in layout.FEATURE_FOLDERS.items():
        if folders is not None and folder not in folders:
            continue
        found = _list_shards(features_dir, folder)
        if not found:
            continue
        inputs[split] = {'pattern': layout.join(features_dir, folder, '*.tfrecord'), 'shards': len(found),
                         'bytes': sum(s for _, s in found)}
        current: list[str] = []
        size = 0
        for path, nbytes in found:
            current.append(path)
            size += nbytes
            if size >= target_bytes:
                groups.append(ShardGroup(len(groups), split, tuple(current)))
                current, size = [], 0
        if current:
            groups.append(ShardGroup(len(groups), split, tuple(current)))
    return groups, inputs


def read_shard_file(path: str) -> bytes:
    """A shard's bytes. Locally, anything but a regular file (a directory, FIFO, socket, dangling link) is
    refused before it is opened, so a FIFO can never hang the build."""
    if fileio.is_local(path):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise OSError('no such file (a dangling link?)') from None
        if not stat.S_ISREG(mode):
            kind = 'a directory' if stat.S_ISDIR(mode) else 'a FIFO' if stat.S_ISFIFO(mode) else 'not a regular file'
            raise OSError(f'{kind}, not a shard file')
    return fileio.read_bytes(path)


class _ReadShardGroupFn(beam.DoFn):
    def __init__(self):
        self.records_read = Metrics.counter(self.__class__, 'records-read')
        self.shards_read = Metrics.counter(self.__class__, 'shards-read')
        self.damaged = Metrics.counter(self.__class__, 'damaged-inputs')

    def process(self, group: ShardGroup) -> Iterable:
        started = time.perf_counter()
        payloads: list[bytes] = []
        where_source: list[int] = []
        where_record: list[int] = []
        where_offset: list[int] = []
        bad: list[dict] = []
        records_in = 0
        st: dict = {}
        blobs: tuple[bytes, ...] | None = None   # a tarball group's shards, cut from its spill file
        if group.spill is not None:
            spilled, ends = group.spill
            whole = fileio.read_bytes(spilled)
            starts = (0,) + tuple(ends[:-1])
            blobs = tuple(whole[a:b] for a, b in zip(starts, ends))
        for s, path in enumerate(group.paths):
            try:
                data = blobs[s] if blobs is not None else read_shard_file(path)
            except Exception as e:  # noqa: BLE001 -- any failure to read a file is that file's dead letter
                bad.append(deadletter.dead_letter(Stage.READ_SHARD, 'unreadable-file', path,
                                                  f'{type(e).__name__}: {e}', split=group.split, records=0))
                stats.bump(st, 'splits', group.split, 'unreadable_files', 1)
                continue
            self.shards_read.inc()
            for framed in tfrecord.iter_records(data):
                if framed.payload is None:
                    hidden = getattr(framed, 'records', 1)
                    records_in += hidden
                    bad.append(deadletter.dead_letter(
                        Stage.READ_SHARD, framed.reason, path, framed.error, record_index=framed.index,
                        byte_offset=framed.offset, split=group.split, records=hidden,
                        records_estimated=bool(getattr(framed, 'estimated', False))))
                    continue
                records_in += 1
                payloads.append(framed.payload)
                where_source.append(s)
                where_record.append(-1 if framed.index is None else framed.index)
                where_offset.append(framed.offset)
        records, bad_records = parse_records(payloads)
        for b in bad_records:
            rec = where_record[b.position]
            bad.append(deadletter.dead_letter(
                Stage.PARSE_RECORD, b.reason, group.paths[where_source[b.position]], b.error,
                record_index=None if rec < 0 else rec, byte_offset=where_offset[b.position], split=group.split))
        self.records_read.inc(len(payloads))
        self.damaged.inc(len(bad))
        yield from tag_dead_letters(bad, log)
        stats.bump(st, 'splits', group.split, 'records_in', records_in)
        stats.bump(st, 'splits', group.split, 'shards', len(group.paths))
        stats.bump(st, 'timings', 'read_parse', time.perf_counter() - started)
        yield beam.pvalue.TaggedOutput(STATS, st)
        log.info('read group %d (%s): %d shards, %d records, %d damaged', group.group_id, group.split,
                 len(group.paths), len(records), len(bad))
        yield ShardBatch(group.group_id, group.split, group.paths, records,
                         np.asarray(where_source, np.int64), np.asarray(where_record, np.int64),
                         np.asarray(where_offset, np.int64))


class ReadOutputs(NamedTuple):
    """ReadShards' and ReadTarball's outputs."""
    records: PCollection[ShardBatch]
    dead_letters: PCollection[dict]
    stats: PCollection[dict]


class ReadShards(beam.PTransform):
    """PCollection[ShardGroup] -> ReadOutputs: a ShardBatch per group, dead letters, stats.

    Every framed record, damaged stretch and unreadable file is counted in ``records_in``; each one is
    either in a ShardBatch or a dead letter. Groups are redistributed first, so every worker parses.
    """

    def expand(self, groups: PCollection[ShardGroup]) -> ReadOutputs:
        out = (groups
               | 'Redistribute' >> beam.Reshuffle()
               | 'ReadAndParse' >> beam.ParDo(_ReadShardGroupFn()).with_output_types(ShardBatch).with_outputs(
                   DEAD_LETTERS, STATS, main='records'))
        return ReadOutputs(out.records, out[DEAD_LETTERS], out[STATS])


class _StreamTarballFn(beam.DoFn):
    """tarball path -> ShardGroups of its shard members (their bytes in one spill file under ``spill_dir``
    each), cut per split at about ``target_bytes`` in archive order, like ``plan_shard_groups`` cuts a sorted
    folder; every other member and every damaged stretch of the archive becomes a dead letter naming
    ``tarball:member``."""

    def __init__(self, target_bytes: int, spill_dir: str, http: dict | None = None):
        if target_bytes <= 0:
            raise ValueError(f'target_bytes must be positive, got {target_bytes}')
        self.target_bytes, self.spill_dir, self.http = target_bytes, spill_dir, dict(http or {})
        self.members = Metrics.counter(self.__class__, 'shard-members')
        self.damaged = Metrics.counter(self.__class__, 'damaged-members')

    def process(self, tarball: str) -> Iterable:
        started = time.perf_counter()
        st: dict = {}
        bad: list[dict] = []
        current: dict[str, tuple[list, list, int]] = {}
        next_id = 0
        last_split: str | None = None

        def cut(folder: str):
            nonlocal next_id
            names, blobs, _ = current.pop(folder)
            split = layout.FEATURE_FOLDERS[folder]
            # The group's bytes go to one spill file; only its name and the member ends travel, so the
            # groups can be redistributed (parsed by every worker) without a shuffle holding the tarball.
            path = layout.join(self.spill_dir, 'tarball', f'group-{next_id:06d}.bin')
            fileio.write_bytes(path, b''.join(blobs))
            ends = tuple(np.cumsum([len(b) for b in blobs]).tolist())
            group = ShardGroup(next_id, split, tuple(names), spill=(path, ends))
            next_id += 1
            return group

        def reject(reason: str, source: str, error: str, split: str | None, records: int, offset=None,
                   estimated: bool = False) -> None:
            bad.append(deadletter.dead_letter(Stage.READ_SHARD, reason, source, error, byte_offset=offset,
                                              split=split, records=records, records_estimated=estimated))
            if records:
                stats.bump(st, 'splits', split or 'unknown', 'records_in', records)

        try:
            total = fileio.size_of(tarball)
        except Exception:  # noqa: BLE001 -- only used to estimate what a fault hid; the open below reports
            total = None
        shard_members = 0
        missing_bytes = 0  # of members cut short, from the sizes their tar headers declare

        def keep(name: str, size: int) -> bool:
            # Shards (and misplaced shards, to count their records) are held; anything else, or a member
            # larger than any shard could be, streams past: memory never grows with what a member declares.
            return name.endswith('.tfrecord') and size <= MAX_MEMBER_BYTES

        def incomplete(reason: str, error: str, records: int) -> None:
            st.setdefault('incomplete_inputs', []).append(
                {'source': tarball, 'reason': reason, 'error': error, 'records_estimated': records})

        try:
            source = fileio.open_stream(tarball, **self.http)
        except Exception as e:  # noqa: BLE001 -- an unreadable tarball is its dead letter, and fails the run
            reject('unreadable-file', tarball, f'{type(e).__name__}: {e}', None, 0)
            incomplete('unreadable-file', f'{type(e).__name__}: {e}', 0)
            source = None
        if source is not None:
            with source:
                stream = release_tar.Stream(source.read)
                for unit in release_tar.iter_members(stream, keep):
                    where = f'{tarball}:{unit.name}' if unit.name else tarball
                    folder = release_tar.split_folder_of(unit.name)
                    split = layout.FEATURE_FOLDERS.get(folder) if folder else None
                    if unit.kind == 'dir':
                        stats.bump(st, 'tarball', 'directories', 1)
                    elif unit.kind == 'file' and unit.data is None and unit.name.endswith('.tfrecord'):
                        records = _records_in_bytes(unit.size)
                        reject('member-too-large', where, f'declares {unit.size:,} bytes, more than any shard can '
                               f'hold ({MAX_MEMBER_BYTES:,}); not read (records estimated from its size)',
                               split, records, unit.offset, estimated=True)
                    elif unit.kind == 'file' and release_tar.shard_member(unit.name):
                        names, blobs, size = current.setdefault(folder, ([], [], 0))
                        names.append(where)
                        blobs.append(unit.data)
                        current[folder] = (names, blobs, size + len(unit.data))
                        last_split = split
                        shard_members += 1
                        missing_bytes += unit.size - len(unit.data)
                        self.members.inc()
                        stats.bump(st, 'tarball', 'shard_members', 1)
                        if current[folder][2] >= self.target_bytes:
                            yield cut(folder)
                    elif unit.kind == 'file':
                        # A misplaced shard still holds records: count them, so the run says what it lost.
                        records = sum(u.records for u in tfrecord.iter_records(unit.data)) \
                            if unit.name.endswith('.tfrecord') else 0
                        reject('unexpected-member', where, 'not a release shard (expected '
                               'audioset_v1_embeddings/{bal_train,eval,unbal_train}/<name>.tfrecord); not read',
                               split, records, unit.offset)
                    elif unit.kind == 'other':
                        reject('unreadable-file', where, unit.error, split, 0, unit.offset)
                    elif unit.reason == 'corrupt-tar-header':
                        reject(unit.reason, tarball, unit.error, last_split, _records_in_bytes(unit.size),
                               unit.offset, estimated=True)
                    else:
                        # The stream ends early: what follows is unknowable. The records it hid are estimated
                        # from the bytes never read (when the source's size is known) and the cut member's
                        # declared size; the seal also counts the CSV rows that no record met, and fails the run.
                        lost = missing_bytes
                        if total and stream.consumed and total > stream.consumed:
                            ratio = stream.produced / stream.consumed if stream.compressed else 1.0
                            lost += int((total - stream.consumed) * ratio)
                        records = _records_in_bytes(lost)
                        error = f'{unit.error} (records hidden: about {records:,}, from {lost:,} bytes)'
                        reject(unit.reason, tarball, error, last_split, records, unit.offset, estimated=True)
                        incomplete(unit.reason, unit.error, records)
                stats.bump(st, 'tarball', 'compressed_bytes', stream.consumed)
                stats.bump(st, 'tarball', 'tar_bytes', stream.produced)
            if not shard_members and not st.get('incomplete_inputs'):
                incomplete('no-shards', 'the tarball holds no release shard (expected members '
                           'audioset_v1_embeddings/{bal_train,eval,unbal_train}/<name>.tfrecord)', 0)
        for folder in list(layout.FEATURE_FOLDERS):
            if folder in current:
                yield cut(folder)
        self.damaged.inc(len(bad))
        yield from tag_dead_letters(bad, log)
        stats.bump(st, 'timings', 'read_tarball', time.perf_counter() - started)
        yield beam.pvalue.TaggedOutput(STATS, st)
        log.info('streamed %s: %d shard groups, %d dead letters', tarball, next_id, len(bad))


class ReadTarball(beam.PTransform):
    """PCollection[str] (tarball paths: local, gs:// or http(s)://) -> ReadOutputs, as ReadShards.

    One reader streams each tarball (never unpacked as a tree) and cuts its shard members into groups of
    about ``target_bytes``. Each group's bytes are written to one spill file under ``spill_dir`` as it is
    cut and only its name travels: the groups are redistributed, so parsing, labelling and writing fan out
    over every worker while the runner's shuffle holds descriptors, never the tarball (a shuffle of the
    bytes themselves held 4.8 GB in the DirectRunner's runner process for a 0.64 GB tarball). Sources are
    named ``<tarball>:<member>``; every member and damaged stretch is either read or a dead letter, and
    counted in ``records_in``.
    """

    def __init__(self, target_bytes: int, spill_dir: str, http: dict | None = None):
        super().__init__()
        self.target_bytes, self.spill_dir, self.http = target_bytes, spill_dir, http

    def expand(self, tarballs: PCollection[str]) -> ReadOutputs:
        streamed = (tarballs | 'StreamTarball' >> beam.ParDo(_StreamTarballFn(self.target_bytes, self.spill_dir,
                                                                               self.http))
                    .with_output_types(ShardGroup).with_outputs(DEAD_LETTERS, STATS, main='groups'))
        read = streamed.groups | 'ReadShards' >> ReadShards()
        dead = (streamed[DEAD_LETTERS], read.dead_letters) | 'FlattenDeadLetters' >> beam.Flatten()
        st = (streamed[STATS], read.stats) | 'FlattenStats' >> beam.Flatten()
        return ReadOutputs(read.records, dead, st)


def plan_features(features_dir: str | None, target_bytes: int) -> tuple[FeatureSource | None, list[ShardGroup], dict]:
    """(source, shard groups, inputs per split) of a --features_dir in any accepted form (see
    ``resolve_features``). A tarball has no groups here: ReadTarball cuts them while it streams."""
    if not features_dir:
        return None, [], {}
    try:
        source = resolve_features(features_dir)
    except FeaturesError as e:
        if not e.empty:
            raise
        return FeatureSource(features_dir, root=features_dir, folders=()), [], {}
    if source.tarball:
        return source, [], {}
    groups, inputs = plan_shard_groups(source.root, target_bytes, source.folders)
    return source, groups, inputs


def read_features(p, source: FeatureSource | None, groups: list[ShardGroup], target_bytes: int,
                  spill_dir: str, http: dict | None = None) -> ReadOutputs:
    """Adds the read of ``source`` to pipeline ``p`` (step labels stay those of the loose-shard build).
    ``spill_dir``: where a tarball's shard groups are written for redistribution (see ReadTarball);
    ``http``: keyword arguments of ``fileio.open_stream`` for an http(s) tarball (timeout, deadline)."""
    if source is not None and source.tarball:
        return (p | 'ListTarballs' >> beam.Create([source.tarball])
                  | 'ReadTarball' >> ReadTarball(target_bytes, spill_dir, http))
    return (p | 'ListShardGroups' >> beam.Create(groups)
              | 'ReadShards' >> ReadShards())
