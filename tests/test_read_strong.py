"""ReadStrongLabels under TestPipeline: which MIDs it accepts (the ontology's and class index's, given as
``known_mids``, and mid_to_display_name.tsv's), and the per-file line counts the seal checks."""
import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests import strong_fixtures as sf
from tests.fixtures import SAMPLE
from transforms.strong import FILES, ReadStrongLabels, find_strong_files

ONTOLOGY = frozenset(n['id'] for n in json.loads((SAMPLE / 'ontology.json').read_text()))


def test_a_mid_in_neither_the_ontology_nor_the_names_file_is_a_dead_letter(tmp_path):
    names = sf.display_names()
    only_ontology = sorted(ONTOLOGY - set(names))[0]     # a real class the strong release never uses
    named, odd = sorted(names)[0], sf.outside_ontology()[0]
    rows = [f'a_0\t0.000\t1.000\t{named}', f'a_0\t0.000\t1.000\t{only_ontology}', f'a_0\t0.000\t1.000\t{odd}',
            'a_0\t0.000\t1.000\t/m/0notaclass']
    sf.write_tsv(tmp_path / sf.TRAIN, sf.HEADER, rows)
    (tmp_path / sf.NAMES).write_bytes(sf.NAMES_TSV.read_bytes())
    files = find_strong_files(str(tmp_path))
    assert files == {'train': str(tmp_path / sf.TRAIN), 'names': str(tmp_path / sf.NAMES)}
    with TestPipeline() as p:
        out = p | ReadStrongLabels(files, str(tmp_path / 'spill'), ONTOLOGY)
        assert_that(out.dead_letters | beam.Map(lambda d: (d['stage'], d['reason'], d['source'], d['line_number'])),
                    equal_to([('parse-strong', 'unknown-mid', files['train'], 5)]), label='DeadLetters')
        counts = out.stats | beam.Map(lambda s: (s['strong']['files']['train'],
                                                     sorted(s['strong_classes']['counts']['train'])))
        assert_that(counts, equal_to([({'file': files['train'], 'lines_in': 4, 'lines_rejected': 1, 'rows_ok': 3,
                                        'segments': 1, 'dropped': None}, sorted([named, only_ontology, odd]))]),
                    label='Counts')


def test_find_strong_files_probes_the_known_names_only(tmp_path):
    (tmp_path / sf.EVAL).write_text(sf.HEADER + '\n')
    (tmp_path / 'audioset_train_strong.tsv.part').write_text('')
    assert find_strong_files(str(tmp_path)) == {'eval': str(tmp_path / sf.EVAL)}
    assert set(FILES.values()) == {sf.TRAIN, sf.EVAL, sf.FRAMED, sf.NAMES}
