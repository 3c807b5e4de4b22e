"""litellm against murakkab, two ways: through `murakkab serve`, and in-process with no server.

1. Server: litellm's OpenAI provider with `model="openai/murakkab/<intent>"`, `api_base` pointing
   at the server, and the node's annotation in `extra_body={"murakkab": {...}}`.
2. In-process: `register(runtime)` installs a litellm provider, and `model="murakkab/<intent>"`
   goes straight to the Runtime (no HTTP hop of ours).

Run (after `murakkab models pull tiny small`):
    murakkab serve &                                   # in another shell, or pass --base-url
    .venv/bin/python examples/litellm_client.py [--base-url http://127.0.0.1:8000/v1] [--in-process]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no price-map download at import

import litellm
from rich.console import Console

MESSAGES = [{"role": "user", "content": "Ticket: 'I was charged twice this month.' Reply with one word: "
                                        "billing, bug or other."}]


def through_server(console: Console, base_url: str, api_key: str) -> None:
    resp = litellm.completion(
        model="openai/murakkab/classify", api_base=base_url, api_key=api_key, messages=MESSAGES, max_tokens=8,
        temperature=0, extra_body={"murakkab": {"intent": "classify", "node": "triage", "workflow": "support"}},
    )
    console.print(f"[bold]server[/]    deployment={resp.model!r} answer={resp.choices[0].message.content!r}")
    text = "".join(chunk.choices[0].delta.content or "" for chunk in litellm.completion(
        model="openai/murakkab/answer", api_base=base_url, api_key=api_key, messages=MESSAGES, max_tokens=8,
        stream=True))
    console.print(f"[bold]server[/]    streamed={text!r}")


def in_process(console: Console) -> None:
    from murakkab_lg import Runtime
    from murakkab_lg.integrations.litellm import register

    with Runtime.embedded(models=["tiny"], default="smollm2-135m") as runtime:
        register(runtime)
        # The deployment by name works with or without profiles; `murakkab/<intent>` needs a profile
        # for planning (the shipped one, or `murakkab profile`).
        resp = litellm.completion(model="murakkab/smollm2-135m", messages=MESSAGES, max_tokens=8, temperature=0)
        rec = runtime.telemetry.records()[-1]
        console.print(f"[bold]in-process[/] deployment={rec.deployment!r} answer={resp.choices[0].message.content!r} "
                      f"latency={rec.latency_s * 1e3:.0f} ms energy={rec.energy_j or 0:.2f} J ({rec.energy_label})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", default=os.environ.get("MURAKKAB_API_KEY", "unused"))
    p.add_argument("--in-process", action="store_true", help="only the in-process provider (no server needed)")
    args = p.parse_args()
    console = Console()
    if not args.in_process:
        through_server(console, args.base_url, args.api_key)
    in_process(console)


if __name__ == "__main__":
    main()
