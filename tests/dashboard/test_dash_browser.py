"""The real-browser test: `streamlit run` on 127.0.0.1, driven by Playwright in Debian's Chromium.
Select samples with a lasso on the embedding, run a tiny job, and see the Alignment chart."""

import os
import re
from pathlib import Path

import pytest

from dash_browser import CHROMIUM, browser_page, goto_page, idle, lasso, run_job, streamlit_app
from dash_helpers import TINY_ENV

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    if os.environ.get("TMU_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)


def test_lasso_run_alignment(tiny_run, tmu_home, tmp_path):
    env = {**TINY_ENV, "TMU_HOME": str(tmu_home)}
    with streamlit_app(env, tmp_path / "streamlit.log") as (url, _), browser_page() as page:
        page.goto(url)
        page.wait_for_selector("h1", timeout=60_000)
        goto_page(page, "Forget set")
        page.get_by_text("point and click", exact=True).click()
        plot = page.locator(".js-plotly-plot").first
        plot.wait_for(timeout=90_000)
        idle(page)
        lasso(page, plot, frac=0.12)
        success = page.locator("[data-testid='stAlert']", has_text="D_f has")
        success.wait_for(timeout=30_000)
        n = int(re.search(r"D_f has (\d+) samples", success.inner_text()).group(1))
        assert n > 0
        goto_page(page, "Run")
        idle(page)
        outcome = run_job(page, tmp_path / "streamlit.log")
        assert outcome == "Done", outcome
        goto_page(page, "Alignment")
        page.locator(
            ".js-plotly-plot", has_text="Per-class accuracy on the forget set"
        ).first.wait_for(timeout=60_000)


def test_click_a_prediction_matrix_cell(tiny_run, tmu_home, tmp_path):
    """On the Inspect page, a click on a marker of the prediction matrix lists that cell's
    samples and shows their thumbnails."""
    env = {**TINY_ENV, "TMU_HOME": str(tmu_home)}
    with streamlit_app(env, tmp_path / "streamlit.log") as (url, _), browser_page() as page:
        page.goto(url)
        page.wait_for_selector("h1", timeout=60_000)
        goto_page(page, "Inspect")
        chart = page.locator(".js-plotly-plot", has_text="tmu vs gold").first
        chart.wait_for(timeout=60_000)
        idle(page)
        box = chart.locator(".scatterlayer .trace").first.locator(".point").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.click(x, y)
        listed = page.get_by_text(re.compile(r"^\d+ sample\(s\) gold puts in class \d+"))
        listed.first.wait_for(timeout=30_000)
        n = int(listed.first.inner_text().split()[0])
        idle(page)
        shown = page.locator("[data-testid='stImage'], [data-testid='stImageContainer']")
        assert shown.count() >= min(n, 40) > 0


def tour_texts(page, url: str) -> list[str]:
    """Open `url` in `page`, wait for the Tour's last step, return its headings and texts."""
    page.goto(url)
    page.get_by_text("7. The result", exact=True).wait_for(timeout=90_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    idle(page)
    # Routed through app.py's navigation even as a fresh server's first visit (a `pages/`
    # folder would have Streamlit run the page file alone: no frame, file-name labels).
    assert "Forget set" in page.locator("[data-testid='stSidebarNav']").inner_text()
    main = page.locator("[data-testid='stMain']")  # the page, not the sidebar
    heads = main.locator("h3").all_inner_texts()
    steps = main.locator("[data-testid='stMarkdownContainer'] p").all_inner_texts()
    return [h for h in heads if h[:1].isdigit()] + steps


def test_a_tour_link_reproduces_the_same_page_in_a_fresh_browser(tiny_run, tmu_home, tmp_path):
    """Open a Tour link, walk its seven steps, then open the address the page shows in another
    browser: the same steps with the same numbers."""
    env = {**TINY_ENV, "TMU_HOME": str(tmu_home)}
    run_id = Path(tiny_run).name
    with streamlit_app(env, tmp_path / "streamlit.log") as (url, _):
        with browser_page() as page:
            first = tour_texts(page, f"{url}/tour?run={run_id}&method=random_label")
            shown = page.url
        assert [t for t in first if t[:1].isdigit()] == [
            "1. What was asked",
            "2. What the gold model does",
            "3. Why not zero",
            "4. The twin problem",
            "5. What the twin learns",
            "6. The flips",
            "7. The result",
        ]
        assert f"run={run_id}" in shown and "method=random_label" in shown
        with browser_page() as fresh:
            assert tour_texts(fresh, shown) == first
