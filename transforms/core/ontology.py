"""The AudioSet class index and ontology: names, restrictions, and ancestry over the ontology DAG."""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json


@dataclasses.dataclass(frozen=True)
class ClassIndex:
    """``class_labels_indices.csv``: label index <-> MID <-> display name."""
    mids: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def from_csv(cls, data: bytes, source: str = 'class_labels_indices.csv') -> 'ClassIndex':
        try:
            text = data.decode('utf-8-sig')
        except UnicodeDecodeError as e:
            raise ValueError(f'{source}: not UTF-8 text ({e.reason} at byte {e.start})') from None
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            raise ValueError(f'{source}: empty file; expected the header "index,mid,display_name" and a line '
                             'per class')
        if [c.strip() for c in rows[0]] != ['index', 'mid', 'display_name']:
            raise ValueError(f'{source}: line 1: expected the header "index,mid,display_name", '
                             f'got {",".join(rows[0])!r}')
        mids, names = [], []
        line_of_index: dict[str, int] = {}
        line_of_mid: dict[str, int] = {}
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != 3:
                raise ValueError(f'{source}: line {line}: expected 3 columns index,mid,display_name, '
                                 f'got {len(row)}: {row!r}')
            index, mid = row[0].strip(), row[1].strip()
            if index in line_of_index:
                raise ValueError(f'{source}: line {line}: index {index} appears twice (first on line '
                                 f'{line_of_index[index]})')
            if index != str(len(mids)):
                raise ValueError(f'{source}: line {line}: index {index!r} where {len(mids)} was expected '
                                 '(indices run 0, 1, 2, ... in file order)')
            if not mid:
                raise ValueError(f'{source}: line {line}: empty MID')
            if mid in line_of_mid:
                raise ValueError(f'{source}: line {line}: MID {mid} appears twice (first on line '
                                 f'{line_of_mid[mid]})')
            line_of_index[index], line_of_mid[mid] = line, line
            mids.append(mid)
            names.append(row[2])
        if not mids:
            raise ValueError(f'{source}: no classes, only the header')
        return cls(tuple(mids), tuple(names))

    def __len__(self) -> int:
        return len(self.mids)

    @functools.cached_property
    def position(self) -> dict[str, int]:
        return {m: i for i, m in enumerate(self.mids)}


@dataclasses.dataclass(frozen=True)
class Node:
    mid: str
    name: str
    description: str
    child_ids: tuple[str, ...]
    restrictions: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Ontology:
    """``ontology.json``: a DAG of classes (a node may have several parents)."""
    nodes: tuple[Node, ...]

    @classmethod
    def from_json(cls, data: bytes, source: str = 'ontology.json') -> 'Ontology':
        try:
            raw = json.loads(data)
        except ValueError as e:
            raise ValueError(f'{source}: not valid JSON: {e}') from None
        if not isinstance(raw, list):
            raise ValueError(f'{source}: expected a JSON list of classes, got a {type(raw).__name__}')
        if not raw:
            raise ValueError(f'{source}: no classes (an empty list)')
        nodes = []
        for i, obj in enumerate(raw):
            if not isinstance(obj, dict):
                raise ValueError(f'{source}: entry {i}: expected an object with "id" and "name", '
                                 f'got a {type(obj).__name__}')
            for key in ('id', 'name'):
                if not isinstance(obj.get(key), str) or not obj[key]:
                    raise ValueError(f'{source}: entry {i}: lacks "{key}" (a non-empty string)')
            for key in ('child_ids', 'restrictions'):
                value = obj.get(key, [])
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f'{source}: class {obj["id"]}: "{key}" must be a list of strings, '
                                     f'got {value!r}')
            nodes.append(Node(obj['id'], obj['name'], obj.get('description', ''),
                              tuple(obj.get('child_ids', ())), tuple(obj.get('restrictions', ()))))
        ontology = cls(tuple(nodes))
        known = ontology.order
        if len(known) != len(nodes):
            seen: dict[str, int] = {}
            for i, n in enumerate(nodes):
                if n.mid in seen:
                    raise ValueError(f'{source}: class id {n.mid} appears twice (entries {seen[n.mid]} and {i})')
                seen[n.mid] = i
        for n in nodes:
            for c in n.child_ids:
                if c not in known:
                    raise ValueError(f'{source}: class {n.mid} ({n.name}) lists unknown child {c}')
        try:
            ontology.ancestors  # noqa: B018 -- computed eagerly to reject cycles at load time
        except ValueError as e:
            raise ValueError(f'{source}: {e}') from None
        except RecursionError:
            raise ValueError(f'{source}: classes nest too deeply (over ~900 levels of child_ids)') from None
        return ontology

    @functools.cached_property
    def order(self) -> dict[str, int]:
        return {n.mid: i for i, n in enumerate(self.nodes)}

    @functools.cached_property
    def by_mid(self) -> dict[str, Node]:
        return {n.mid: n for n in self.nodes}

    @functools.cached_property
    def parents(self) -> dict[str, tuple[str, ...]]:
        parents: dict[str, list[str]] = {n.mid: [] for n in self.nodes}
        for n in self.nodes:
            for c in n.child_ids:
                parents[c].append(n.mid)
        return {m: tuple(p) for m, p in parents.items()}

    @functools.cached_property
    def ancestors(self) -> dict[str, tuple[str, ...]]:
        """Every MID's ancestors over all parent paths, in ontology order. Raises on a cycle."""
        done: dict[str, frozenset[str]] = {}

        def visit(mid: str, path: tuple[str, ...]) -> frozenset[str]:
            if mid in done:
                return done[mid]
            if mid in path:
                loop = (path[path.index(mid):] + (mid,))[::-1]   # parent first: each lists the next as a child
                raise ValueError('the classes form a cycle, each listing the next in its child_ids (the '
                                 'ontology must be a DAG): '
                                 + ' -> '.join(f'{m} ({self.by_mid[m].name})' for m in loop))
            found: set[str] = set()
            for p in self.parents[mid]:
                found.add(p)
                found |= visit(p, path + (mid,))
            done[mid] = frozenset(found)
            return done[mid]

        order = self.order
        return {n.mid: tuple(sorted(visit(n.mid, ()), key=order.__getitem__)) for n in self.nodes}

    @functools.cached_property
    def depth(self) -> dict[str, int]:
        """Shortest number of edges up to a root."""
        depth: dict[str, int] = {}
        frontier = [n.mid for n in self.nodes if not self.parents[n.mid]]
        level = 0
        while frontier:
            nxt = []
            for m in frontier:
                if m not in depth:
                    depth[m] = level
                    nxt.extend(self.by_mid[m].child_ids)
            frontier, level = nxt, level + 1
        return depth


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Class index + ontology: what the join needs to label a segment."""
    class_index: ClassIndex
    ontology: Ontology

    @functools.cached_property
    def names(self) -> dict[str, str]:
        names = dict(zip(self.class_index.mids, self.class_index.names))
        names.update((n.mid, n.name) for n in self.ontology.nodes)
        return names

    @functools.cached_property
    def known_mids(self) -> frozenset[str]:
        return frozenset(self.class_index.mids) | frozenset(self.ontology.order)

    @functools.cached_property
    def all_mids(self) -> tuple[str, ...]:
        """Every known MID: the class index's in index order, then the ontology's other classes, sorted.
        A MID's position here is its compact code (int16) where labels travel as numbers."""
        labels = set(self.class_index.mids)
        return self.class_index.mids + tuple(sorted(m for m in self.ontology.order if m not in labels))

    def expand(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """``labels`` followed by each of their ancestors not already listed, in ontology order.

        >>> vocab.expand(('/m/0l14jd',))  # doctest: +SKIP  (Choir: under Singing and Musical instrument)
        """
        cache = self.__dict__.setdefault('_expand_cache', {})
        got = cache.get(labels)
        if got is None:
            seen = set(labels)
            extra: set[str] = set()
            for m in labels:
                extra.update(a for a in self.ontology.ancestors.get(m, ()) if a not in seen)
            order = self.ontology.order
            got = cache[labels] = labels + tuple(sorted(extra, key=order.__getitem__))
        return got

    def names_of(self, mids) -> list[str]:
        names = self.names
        return [names.get(m, '') for m in mids]

    def __getstate__(self):
        return {'class_index': self.class_index, 'ontology': self.ontology}

    def __setstate__(self, state):
        object.__setattr__(self, 'class_index', state['class_index'])
        object.__setattr__(self, 'ontology', state['ontology'])
