"""Hostile id lists in the dashboard: an uploaded or selected id that is no pool position must
become check_forget's message (the sidebar of every page shows it), never an exception."""

import re

import numpy as np
import pytest

from dash_helpers import tiny_state


@pytest.mark.parametrize(
    "selection, message",
    [
        ([2**63], "id 9223372036854775808 is out of range"),
        ([3, 2**70], "is out of range"),
        ([-1, 3], "id -1 is out of range"),
        ([np.int64(-5)], "id -5 is out of range"),
        ([1.5], "ids must be integers, not 1.5"),
        ([None], "ids must be integers, not None"),
        ([True], "ids must be integers, not True"),
        (["x"], "ids must be integers .*, not 'x'"),
        ([10**6], r"ids \[1000000\] are out of range 0..1796"),
    ],
)
def test_a_bad_id_in_the_selection_is_a_message_not_an_exception(tmu_home, selection, message):
    from dashboard import service

    state = tiny_state()
    state["w.forget_mode"] = "point and click"
    state["sel.ids"] = selection
    check = service.check_forget(state)
    assert check.error is not None and len(check.ids) == 0
    assert re.search(message, check.error), check.error


@pytest.mark.parametrize(
    "upload, message",
    [
        (b"1\n99999999999999999999\n", "line 2: id 99999999999999999999 is out of range"),
        (b"1\n-2\n", "line 2: id -2 is out of range"),
        (b"\xff\xfe1\x002\x00", "the id list is not UTF-8 text"),  # UTF-16 from Notepad
        (b"", "the id list holds no id"),
        (b"3,7\n4,2\n", "looks like a table without a header"),
        (b"name,label\n3,1\n", "must name exactly one `id` column"),
    ],
)
def test_a_bad_upload_is_a_value_error_naming_the_value(tmu_home, upload, message):
    from dashboard import service

    state = tiny_state()
    with pytest.raises(ValueError, match=message):  # the Forget page shows it with st.error
        service.add_ids(state, service.parse_id_list(upload))
    assert state["sel.ids"] == []  # nothing half-added


def test_an_upload_with_a_bom_and_an_id_column_is_read(tmu_home):
    from dashboard import service

    state = tiny_state()
    state["w.forget_mode"] = "point and click"
    train = service.thumbnail_table("digits", 0, None, 0)["id"].tolist()[:3]
    upload = ("\ufeffid,label\n" + "".join(f"{i},x\n" for i in train)).encode()
    assert service.parse_id_list(upload) == train
    assert service.add_ids(state, service.parse_id_list(upload)) == 3
    assert service.check_forget(state).ids.tolist() == sorted(train)


def test_add_ids_refuses_an_id_that_is_no_pool_position(tmu_home):
    from dashboard import service

    state = tiny_state()
    with pytest.raises(ValueError, match="id -1 is out of range"):
        service.add_ids(state, [1, -1])
    with pytest.raises(ValueError, match=f"id {2**64} is out of range"):
        service.add_ids(state, [2**64])
    assert state["sel.ids"] == []
