"""The proxy's defences that are not authentication: the URL guard against server-side request forgery
(`urls.py`), and the limits on what one HTTP request may cost the server before the gateway sees it —
header size, header count, slow clients (`limits.py`, `http.py`).
"""
