"""`python -m dashboard [STREAMLIT OPTIONS]`: start the dashboard from any directory.

Streamlit reads `.streamlit/config.toml` from the directory it is started in, so started
elsewhere it would listen on every interface and show tracebacks to the browser. This launcher
runs `streamlit run dashboard/app.py` from the repository root, so the project's config (127.0.0.1
only, XSRF on, size-limited uploads, no error details in the browser) always applies; options
given here (`--server.port 8502`) still win.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from streamlit.web import cli

    os.chdir(ROOT)
    sys.argv = ["streamlit", "run", str(ROOT / "dashboard" / "app.py"), *(argv or [])]
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
