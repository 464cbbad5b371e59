"""qa_true_counts.csv (``--label_quality``): counts are ASCII digits, and every malformed value is an error
naming the file and the line it is on."""
import pytest

from transforms.core.label_quality import parse_label_quality

SPEECH, MUSIC = '/m/09x0r', '/m/04rlf'
HEADER = 'label_id,num_rated,num_true\n'


def parse(body: str):
    return parse_label_quality((HEADER + body).encode(), 'qa_true_counts.csv', [SPEECH, MUSIC])


def test_a_good_file_parses():
    q = parse(f'{SPEECH},10,9\n{MUSIC},0,0\n')
    assert q.counts == {SPEECH: (10, 9), MUSIC: (0, 0)} and q.quality(SPEECH) == 0.9 and q.quality(MUSIC) is None


@pytest.mark.parametrize('value', ['\u0663',          # Arabic-Indic 3: int() reads it as 3
                                   '\u00b2',          # superscript 2: isdigit() is True, int() refuses it
                                   '\uff15',          # fullwidth 5
                                   '\u0967\u0966',    # Devanagari 10
                                   '-1', '+3', '1.0', '', '1' * 19])
@pytest.mark.parametrize('column', ['num_rated', 'num_true'])
def test_a_count_not_in_ascii_digits_names_file_and_line(value, column):
    row = f'{MUSIC},{value},0\n' if column == 'num_rated' else f'{MUSIC},9,{value}\n'
    with pytest.raises(ValueError, match=r'^qa_true_counts\.csv: line 3: num_rated and num_true must be '
                                         r'non-negative integers \(ASCII digits'):
        parse(f'{SPEECH},10,9\n' + row)


def test_line_numbers_are_the_files_lines():
    # A quoted field spanning two lines: the next row starts on line 4, as an editor shows it.
    with pytest.raises(ValueError, match=r'^qa_true_counts\.csv: line 4: '):
        parse_label_quality((HEADER + '"/m/0\n9x0r",3,1\n/m/04rlf,x,1\n').encode(), 'qa_true_counts.csv',
                            ['/m/0\n9x0r', MUSIC])
