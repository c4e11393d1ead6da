"""Issue 14, found by the fault matrix: a JSON body nested thousands deep (within the size
limit) is a 400, not a RecursionError traceback and a 500."""

import io

import pytest

from pifocus.web.request import HTTPError, read_json_body


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
