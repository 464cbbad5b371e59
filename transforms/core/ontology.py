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
        rows = list(csv.reader(io.StringIO(data.decode('utf-8-sig'))))
        if not rows or [c.strip() for c in rows[0]] != ['index', 'mid', 'display_name']:
            raise ValueError(f'{source}: line 1: expected the header "index,mid,display_name"')
        mids, names = [], []
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != 3 or row[0].strip() != str(len(mids)) or not row[1].strip():
                raise ValueError(f'{source}: line {line}: expected "{len(mids)},<mid>,<name>", got {row!r}')
            mids.append(row[1].strip())
            names.append(row[2])
        if len(set(mids)) != len(mids):
            raise ValueError(f'{source}: a MID appears twice')
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
            raise ValueError(f'{source}: expected a JSON list of classes')
        nodes = []
        for i, obj in enumerate(raw):
            try:
                nodes.append(Node(obj['id'], obj['name'], obj.get('description', ''),
                                  tuple(obj.get('child_ids', ())), tuple(obj.get('restrictions', ()))))
            except (KeyError, TypeError):
                raise ValueError(f'{source}: entry {i} lacks "id" or "name"') from None
        ontology = cls(tuple(nodes))
        known = ontology.order
        if len(known) != len(nodes):
            raise ValueError(f'{source}: a class id appears twice')
        for n in nodes:
            for c in n.child_ids:
                if c not in known:
                    raise ValueError(f'{source}: class {n.mid} lists unknown child {c}')
        ontology.ancestors  # noqa: B018 -- computed eagerly to reject cycles at load time
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
                raise ValueError(f'ontology cycle through {" -> ".join(path + (mid,))}')
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
