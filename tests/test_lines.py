"""Splitting byte streams into lines and decoding each into a JSON object."""

import pytest

from detector.lines import MAX_DEPTH, LineError, LineSplitter, RawLine, decode


def split(chunks, max_line=1024, flush=True):
    splitter = LineSplitter(max_line=max_line)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    if flush:
        lines += list(splitter.flush())
    return lines, splitter


def test_lines_carry_their_number_and_byte_offset():
    lines, splitter = split([b'{"a":1}\n{"b":22}\n'])
    assert [(line.number, line.offset, line.data) for line in lines] == [
        (1, 0, b'{"a":1}'),
        (2, 8, b'{"b":22}'),
    ]
    assert splitter.offset == 17


def test_a_line_split_across_chunks_is_seen_once_and_whole():
    lines, _ = split([b'{"a"', b":1", b"}\n{", b'"b":2}\n'])
    assert [line.data for line in lines] == [b'{"a":1}', b'{"b":2}']
    assert [line.offset for line in lines] == [0, 8]


def test_an_unfinished_line_waits_until_flushed():
    lines, splitter = split([b'{"a":1}\n{"b"'], flush=False)
    assert [line.data for line in lines] == [b'{"a":1}']
    assert splitter.offset == 8 and splitter.pending == 4
    assert [line.data for line in splitter.flush()] == [b'{"b"']


def test_a_line_over_the_cap_is_flagged_and_not_held():
    lines, splitter = split([b"x" * 600, b"y" * 600, b"\nok\n"], max_line=1000)
    assert lines[0].oversize and lines[0].data == b""
    assert lines[1].data == b"ok" and lines[1].offset == 1201
    assert splitter.offset == 1204


def test_offsets_stay_exact_after_an_oversize_line_inside_one_chunk():
    lines, _ = split([b"z" * 50 + b"\n" + b"{}\n"], max_line=10)
    assert lines[0].oversize and lines[1].offset == 51


def test_crlf_and_bom_are_normal_input():
    obj, repaired = decode(RawLine(1, 0, b'\xef\xbb\xbf{"a":1}\r'))
    assert obj == {"a": 1} and not repaired


def test_bad_utf8_is_replaced_and_counted_as_repaired():
    obj, repaired = decode(RawLine(1, 10, b'{"name":"ls\xffass.exe"}'))
    assert repaired and obj["name"] == "ls\ufffdass.exe"


def test_blank_lines_are_no_event():
    assert decode(RawLine(3, 5, b"   ")) == (None, False)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b'{"CallTrace": """x"""}', "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (b"[" * 100 + b"]" * 100, "not an object"),
        (b'{"a":' * (MAX_DEPTH + 5) + b"1" + b"}" * (MAX_DEPTH + 5), "nested deeper"),
    ],
)
def test_unusable_lines_say_why(data, reason):
    with pytest.raises(LineError, match=reason):
        decode(RawLine(1, 0, data))


def test_oversize_line_names_the_cap():
    with pytest.raises(LineError, match="MiB cap"):
        decode(RawLine(1, 0, b"", oversize=True))
