"""The `murakkab` command. It only parses arguments and calls the public library.

Each subcommand lives in `murakkab_lg/commands/<name>.py` with `build_parser(prog)` and
`run(args) -> int`, and is imported only when used, so `murakkab --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

from rich.console import Console
from rich.markup import escape

from murakkab_lg.errors import MurakkabError

__all__ = ("main",)

COMMANDS: dict[str, str] = {
    "demo": "run the ticket-triage demo: static-largest vs planned, on real engines",
    "models": "list or pull the embedded GGUF models",
    "plan": "plan a workflow (LangGraph graph or YAML/JSON file) and explain each choice",
    "profile": "measure quality and speed of the embedded models on this machine",
    "serve": "serve the runtime as an OpenAI-compatible endpoint",
    "status": "show a running server's live state: load, latency, drift and re-plans",
    "simulate": "simulate a workflow under load on profiled deployments and compare policies",
    "doctor": "show engines, GPUs and what is missing on this machine",
}


def _usage() -> str:
    lines = ["usage: murakkab COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, text in COMMANDS.items()]
    lines += ["", "run `murakkab COMMAND --help` for a command's options"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name == "--version":
        from importlib.metadata import version

        print(version("murakkab-lg"))
        return 0
    if name not in COMMANDS:
        print(f"murakkab: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"murakkab_lg.commands.{name}")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("murakkab_lg.commands"):
            print(f"murakkab: command {name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    args = module.build_parser(f"murakkab {name}").parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except MurakkabError as e:
        # escaped: messages name extras such as `murakkab-lg[nvml]`, which rich would read as markup
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
