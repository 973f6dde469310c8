"""`python -m simulator explore`: the simulator in a browser page, for teaching and quick what-ifs.

`api` answers the page's questions with the same library calls as the CLI (no web framework needed there);
`server` puts those answers behind JSON endpoints (Starlette on uvicorn, the optional `explore` extra) and
serves the page in `static/`, with plotly.js read from the installed `plotly` package, so nothing is fetched
from the internet.
"""
