"""The offline spending and sessions report (`supervisor report`).

Read-only, like `inspect`: it reads the ledger and the history whether or not
the service runs, and writes one self-contained HTML file (no script, nothing
fetched), with inline SVG charts drawn here.
"""

__all__: list[str] = []
