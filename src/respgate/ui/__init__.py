"""The admin web UI, served by the proxy at `/ui/` (proxy/ui_routes.py).

    assets.py     the page and its static files (static/), from memory, gzip and ETags; no login needed
    api.py        its JSON API under /ui/api/: admins only (the master key or an admin virtual key)
    responses.py  stored responses: the list (store.list_responses), a response with its chain and cost
    directory.py  who owns what: owners -> key aliases, keys -> owners, team names (cached briefly)
    views.py      keys and teams, spend charts, models and their live state
    rollup.py     spend by day and key / team / end user / model: settled days read once and kept

The front end is plain ES modules over Preact + htm (vendored, 13 KB; static/vendor/README.txt): no
build step, nothing from a CDN, so it works offline. static/boot.js, a classic script run before the
modules, starts the page's first requests so that data and code arrive together. The UI keeps the key
in sessionStorage and sends it as a Bearer token; keys and teams change through LiteLLM's admin routes
(/key/*, /team/*), and the playground calls /v1/responses like any client. Every page marks itself
ready (`<html data-ready=page>`) once its data shows: the browser tests and bench/ui_bench.py wait on it.
"""

from __future__ import annotations
