"""`respgate serve --config config.yaml [--host H] [--port P] [--workers N]`."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from .errors import ConfigError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .config import load_config
    from .proxy.server import CONFIG_ENV, uvicorn_limits

    try:
        config = load_config(args.config)  # validated here so a bad config stops start-up at once
        limits = uvicorn_limits(config)  # request-head size, slow clients, keep-alive, concurrency
    except ConfigError as e:
        print(f"respgate: {e}", file=sys.stderr)
        return 2
    from .observe import logs

    logs.install(config)  # this config's secrets join the redaction
    host = args.host or ("0.0.0.0" if config.general.master_key else "127.0.0.1")
    if not config.general.master_key and not _is_loopback(host) and not (
            args.allow_unauthenticated or config.general.allow_unauthenticated_public):
        print(f"respgate: refusing to listen on {host} without general_settings.master_key; "
              "set a master key, or pass --allow-unauthenticated", file=sys.stderr)
        return 2
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    else:
        os.environ.pop(CONFIG_ENV, None)
    models = ", ".join(sorted({d.model_name for d in config.deployments})) or "none"
    print(f"respgate: serving on http://{host}:{args.port} ({args.workers} worker(s)); models: {models}",
          file=sys.stderr, flush=True)
    uvicorn.run("respgate.proxy.server:app_from_env", factory=True, host=host, port=args.port,
                workers=args.workers, loop="uvloop" if sys.platform != "win32" else "asyncio",
                access_log=False, log_level=args.log_level, server_header=False, date_header=False,
                proxy_headers=False, **limits)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="respgate", description="One Responses API for every LLM provider.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the OpenAI-compatible proxy")
    p.add_argument("--config", help="LiteLLM-style config.yaml (default: the built-in example with mock models)")
    p.add_argument("--host", help="default 127.0.0.1 without a master key, 0.0.0.0 with one")
    p.add_argument("--port", type=int, default=4000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="listen on a non-loopback address without a master key")
    args = parser.parse_args(argv)
    from .observe import logs

    logs.install(None, level=args.log_level.upper())  # request ids and redaction on every log line
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    raise SystemExit(main())
