"""Flip map files (dmlp.flip_map): JSON and CSV, and every way they can be wrong."""
from __future__ import annotations

import pytest

from dmlp.errors import InputError
from dmlp.flip_map import check_flip_map, read_flip_map


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


def test_json_and_csv(tmp_path):
    assert read_flip_map(_file(tmp_path, "m.json", '{"3": 5, "5": 3, "9": 1}'), 10) == {3: 5, 5: 3, 9: 1}
    csv_text = "from,to\n# cat <-> dog\n3,5\n\n5, 3\n9,1\n"
    assert read_flip_map(_file(tmp_path, "m.csv", csv_text), 10) == {3: 5, 5: 3, 9: 1}
    # DivideMix writes its transition with identity entries; they are allowed and change nothing.
    assert read_flip_map(_file(tmp_path, "dm.json", '{"0": 0, "2": 0}'), 10) == {0: 0, 2: 0}


@pytest.mark.parametrize("name,text,needle", [
    ("a.json", '{"3": 5,', "not valid JSON"),
    ("a.json", "[3, 5]", "expected a JSON object"),
    ("a.json", '{"3": "5"}', "not a class number"),
    ("a.json", '{"3": 5.0}', "not a class number"),
    ("a.json", '{"cat": 5}', "'cat' is not a class number"),
    ("a.json", '{"3": 5, "3": 4}', "class 3 is mapped twice"),
    ("a.json", "{}", "empty"),
    ("a.json", '{"3": 10}', "class 10 out of range for 10 classes"),
    ("a.json", '{"3": 3}', "maps to itself"),
    ("a.csv", "3,5\n3,4\n", "line 2: class 3 is mapped twice"),
    ("a.csv", "3,5,1\n", "line 1: expected two fields"),
    ("a.csv", "3;5\n", "line 1: expected two fields"),
    ("a.csv", "-1,5\n", "class -1 out of range"),
    ("a.csv", "from,to\n0,1\n\n5,10\n", "line 4: class 10 out of range for 10 classes"),
    ("a.csv", "# only a comment\n", "empty"),
    ("a.bin", b"\xff\xfe\x00\x81", "not a text file"),
    ("a.json", b"", "the file is empty"),
])
def test_bad_files(tmp_path, name, text, needle):
    with pytest.raises(InputError, match="--flip-map") as err:
        read_flip_map(_file(tmp_path, name, text), 10)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_check_flip_map():
    assert check_flip_map({1: 2}, 3) == {1: 2}
    with pytest.raises(InputError, match="True"):
        check_flip_map({True: 2}, 3)
