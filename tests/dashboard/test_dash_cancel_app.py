"""Streamlit AppTest: the Forget set page's twin estimate is this tab's job, with a keyed Cancel
button while it runs; a cancelled estimate is shown as such and the page reruns without error."""

import pytest
from streamlit.testing.v1 import AppTest

from dash_helpers import ROOT

APP = str(ROOT / "dashboard" / "app.py")


@pytest.mark.slow
def test_the_forget_pages_estimate_can_be_cancelled_by_its_tab(tiny_run):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/forget.py")
    at.run()
    at.session_state["w.seed"] = 7  # an original nobody trained: the job runs for seconds
    at.run()
    next(b for b in at.button if b.label == "Estimate with the twin").click().run()
    assert not at.exception, [e.value for e in at.exception]
    cancel = at.button(key="btn.cancel_estimate")
    assert cancel.label == "Cancel the estimate"
    cancel.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith("The estimate cancelled") for e in at.error), at.error
    assert "btn.cancel_estimate" not in [b.key for b in at.button]
