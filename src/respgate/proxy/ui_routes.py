"""The admin web UI's routes (respgate/ui/): the page and its static files at /ui/ (public: the login form
is among them), and its JSON API at /ui/api/ (admins only; each handler checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .routing import ExtraRoute

if TYPE_CHECKING:
    from .app import Proxy


def routes(proxy: Proxy) -> list[ExtraRoute]:
    from ..ui import api, assets

    return assets.routes() + api.routes(proxy)
