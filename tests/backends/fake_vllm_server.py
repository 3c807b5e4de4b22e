"""A stand-in for `python -m vllm.entrypoints.openai.api_server`, for the adapter's lifecycle tests.

It takes vLLM's command line, serves real HTTP (/health, /v1/models and /v1/chat/completions,
JSON or SSE with usage, a tool call when `tool_choice` requires one, 400 for a malformed request;
each answer after a delay so drain has something to wait for), and forks a "worker" that it does not stop
on SIGTERM, so the adapter's process-tree sweep is what keeps it from becoming an orphan.
Modes via FAKE_VLLM_MODE: "serve" (default) or "crash" (log a root cause, then exit 3).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY_S = float(os.environ.get("FAKE_VLLM_DELAY_S", "0.5"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-m")
    p.add_argument("--model", required=True)
    p.add_argument("--served-model-name", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    args, _ = p.parse_known_args()
    print("fake vLLM args:", " ".join(sys.argv[1:]), flush=True)
    if os.environ.get("FAKE_VLLM_MODE") == "crash":
        print("(VllmWorker-0 pid=1) ERROR ValueError: fake root cause: not enough memory", flush=True)
        for i in range(40):
            print(f"traceback line {i}", flush=True)
        print("RuntimeError: Engine core initialization failed. See root cause above.", flush=True)
        sys.exit(3)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"worker pid {worker.pid}", flush=True)
    with open(os.environ["FAKE_VLLM_PIDFILE"], "w") as f:
        json.dump({"server": os.getpid(), "worker": worker.pid, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}, f)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": args.served_model_name, "object": "model"}]})
                return
            self._send(200 if self.path == "/health" else 404, {})

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["content-length"])))
            time.sleep(DELAY_S)
            if req.get("model") != args.served_model_name:
                self._send(404, {"error": {"message": f"model {req.get('model')} does not exist"}})
                return
            if not isinstance(req.get("messages"), list):
                self._send(400, {"error": {"message": "messages must be a list", "type": "BadRequestError"}})
                return
            message: dict = {"role": "assistant", "content": "fake answer"}
            tools = req.get("tools") or []
            if tools and req.get("tool_choice") not in (None, "auto", "none"):
                name = tools[0]["function"]["name"]
                message = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": name, "arguments": "{}"}}]}
            usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            if req.get("stream"):
                self._stream(message, usage, bool((req.get("stream_options") or {}).get("include_usage")))
                return
            self._send(200, {"id": "fake", "object": "chat.completion", "model": args.served_model_name,
                             "choices": [{"index": 0, "message": message,
                                          "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}],
                             "usage": usage})

        def _stream(self, message: dict, usage: dict, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            head = {"id": "fake", "object": "chat.completion.chunk", "model": args.served_model_name}
            deltas = [{"role": "assistant", "content": ""}]
            if message.get("tool_calls"):
                deltas += [{"tool_calls": [{"index": 0, **message["tool_calls"][0]}]}]
            else:
                deltas += [{"content": "fake"}, {"content": " answer"}]
            events = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
            events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if include_usage:
                events.append({**head, "choices": [], "usage": usage})
            try:
                for ev in events:
                    self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
            except OSError:  # the client went away (a cancelled stream)
                pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), os._exit(0)))  # leaves the worker behind
    server.serve_forever()


if __name__ == "__main__":
    main()
