"""MCP tools the gateway runs for models that cannot (every provider but OpenAI's own Responses API),
servers registered in the config (`mcp_servers:`), and `/mcp`, which shows them as one server.

    config.py   the `mcp_servers` section and the loop's limits
    servers.py  a request's `mcp` tools -> the servers it may call (`litellm_proxy`, labels, access)
    client.py   one server through the `mcp` SDK: list tools, call one (deadlines, size caps, errors)
    items.py    mcp_* items, function names, and the history a model reads
    turn.py     one response's MCP state: tools offered, calls made, bounds, the final Response
    loop.py     the provider wrapper: the loop, as JSON or as one event stream
    native.py   OpenAI-native models: configured servers written out, the rest passed through
    hub.py      the configured servers as one MCP server (the proxy's /mcp)
"""
