"""Issue 14, found by the fault matrix: a JSON body nested thousands deep (within the size
limit) is a 400, not a RecursionError traceback and a 500."""

import io

import pytest

from pifocus.web.request import HTTPError, json_depth, read_json_body


@pytest.mark.parametrize("body", [b"[" * 8000 + b"]" * 8000, b'{"a":' * 2500 + b"1" + b"}" * 2500],
                         ids=["lists", "objects"])
def test_deeply_nested_json_is_a_400(body):
    headers = {"Content-Length": str(len(body)), "Content-Type": "application/json"}
    with pytest.raises(HTTPError) as e:
        read_json_body(headers, io.BytesIO(body))
    assert e.value.status == 400 and "nested too deeply" in str(e.value)


def test_a_flat_object_still_reads():
    body = b'{"steps": 10}'
    assert read_json_body({"Content-Length": str(len(body)), "Content-Type": "application/json"},
                          io.BytesIO(body)) == {"steps": 10}


def test_json_depth_on_literal_texts():
    assert json_depth(b'{"steps": 10}') == 1
    assert json_depth(b'{"roi": [0.1, 0.2, 0.3, 0.4]}') == 2
    assert json_depth(b'{"a": "[[[[{{{{"}') == 1            # brackets inside a string
    assert json_depth(b'{"a": "\\"", "b": [[1]]}') == 3      # an escaped quote does not end the string
    assert json_depth(b"[" * 40 + b"]" * 40) == 40


def test_nesting_is_refused_whatever_the_recursion_limit(monkeypatch):
    import sys
    monkeypatch.setattr(sys, "getrecursionlimit", lambda: 10 ** 6)  # e.g. raised by TensorFlow
    body = b"[" * 100 + b"]" * 100
    with pytest.raises(HTTPError, match="nested too deeply"):
        read_json_body({"Content-Length": str(len(body)), "Content-Type": "application/json"}, io.BytesIO(body))
