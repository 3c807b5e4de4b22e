"""`murakkab serve [--config FILE] [--host 127.0.0.1] [--port 8000] [--api-key KEY ...]`.

Parses arguments, builds the Runtime from the config (or the embedded CPU ladder) and runs the
app under uvicorn. One process and one worker: the Runtime owns the engine processes, and a second
worker would start a second copy of every engine.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

from rich.console import Console

from murakkab_lg.server.config import DEFAULT_KEYS_ENV, build_runtime, load_config

__all__ = ("build_parser", "run")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve the runtime as an OpenAI-compatible endpoint: model='murakkab/<intent>' is planned "
        "onto a deployment. With no --config, serves the embedded CPU models already pulled.",
    )
    p.add_argument("--config", metavar="FILE", help="YAML or JSON server config (see docs/server.md)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; use 0.0.0.0 with --api-key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY' on /v1/* (repeatable; also ${DEFAULT_KEYS_ENV}, "
                   "comma-separated)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    return p


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from murakkab_lg.server import create_app

    console = Console(stderr=True)
    cfg = load_config(args.config)
    keys = cfg.resolved_api_keys(args.api_key)  # same minimum length for every source
    if not _loopback(args.host) and not keys:
        console.print(f"[yellow]warning:[/] serving on {args.host} without API keys: anyone who can reach this "
                      f"port can use the engines. Pass --api-key or set ${cfg.api_keys_env}.")
    runtime = build_runtime(cfg)
    app = create_app(runtime, cfg, api_keys=keys, close_runtime=True, freeze_heap=True)
    console.print(f"murakkab serve: {len(runtime.deployments)} deployments ({', '.join(runtime.deployments)}), "
                  f"policy {runtime.policy.name}, objective {runtime.objective.value}, "
                  f"auth {'on' if keys else 'off'}; http://{args.host}:{args.port}/v1")
    logging.getLogger("murakkab_lg").setLevel(args.log_level.upper())
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                    workers=1, timeout_graceful_shutdown=10, proxy_headers=False, server_header=False)
    finally:
        runtime.close()
    return 0
