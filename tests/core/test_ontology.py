import json
import statistics

import pytest

from tests.fixtures import SAMPLE
from transforms.core.ontology import ClassIndex, Ontology, Vocabulary
from transforms.core.segments_csv import parse_segments_csv


@pytest.fixture(scope='module')
def vocab():
    return Vocabulary(ClassIndex.from_csv((SAMPLE / 'class_labels_indices.csv').read_bytes()),
                      Ontology.from_json((SAMPLE / 'ontology.json').read_bytes()))


def test_real_ontology_shape(vocab):
    onto = vocab.ontology
    assert len(onto.nodes) == 632
    assert sum(1 for m, p in onto.parents.items() if not p) == 7
    assert sum(1 for p in onto.parents.values() if len(p) > 1) == 38
    assert max(len(a) for a in onto.ancestors.values()) == 10
    assert len(vocab.class_index) == 527
    restrictions = [tuple(sorted(n.restrictions)) for n in onto.nodes]
    assert restrictions.count(('blacklist',)) == 66
    assert restrictions.count(('abstract',)) == 22
    assert restrictions.count(('abstract', 'blacklist')) == 1
    blacklisted_labels = [m for m in vocab.class_index.mids if 'blacklist' in onto.by_mid[m].restrictions]
    assert len(blacklisted_labels) == 12


def test_class_names_with_commas(vocab):
    assert vocab.class_index.names[1] == 'Male speech, man speaking'


def test_choir_has_both_parent_paths(vocab):
    choir = next(n.mid for n in vocab.ontology.nodes if n.name == 'Choir')
    names = set(vocab.names_of(vocab.expand((choir,))))
    assert {'Choir', 'Singing', 'Musical instrument', 'Music', 'Human voice', 'Human sounds'} <= names


def test_expand_keeps_labels_first_and_deduplicates(vocab):
    speech = '/m/09x0r'
    out = vocab.expand((speech, '/m/04rlf'))
    assert out[:2] == (speech, '/m/04rlf')
    assert len(out) == len(set(out))
    assert vocab.expand(()) == ()


def test_eval_expansion_matches_the_release_facts(vocab):
    parsed = parse_segments_csv((SAMPLE / 'segments' / 'eval_segments.csv').read_bytes(), 'eval', 'eval',
                                vocab.known_mids)
    labels = parsed.table['labels'].to_pylist()
    expanded = [vocab.expand(tuple(ls)) for ls in labels]
    assert round(statistics.mean(map(len, labels)), 2) == 2.54
    assert round(statistics.mean(map(len, expanded)), 2) == 5.91
    assert max(map(len, expanded)) == 22
    distinct = {m for e in expanded for m in e}
    assert len(distinct) == 557
    assert len(distinct - set(vocab.class_index.mids)) == 30


def test_cycle_and_unknown_child_are_rejected():
    nodes = [{'id': 'a', 'name': 'A', 'child_ids': ['b']}, {'id': 'b', 'name': 'B', 'child_ids': ['a']}]
    with pytest.raises(ValueError, match='cycle'):
        Ontology.from_json(json.dumps(nodes).encode())
    with pytest.raises(ValueError, match='unknown child'):
        Ontology.from_json(json.dumps([{'id': 'a', 'name': 'A', 'child_ids': ['zz']}]).encode(), 'o.json')


def test_class_index_errors_name_the_line():
    with pytest.raises(ValueError, match='idx.csv: line 3'):
        ClassIndex.from_csv(b'index,mid,display_name\n0,/m/a,"A"\n5,/m/b,B\n', 'idx.csv')
