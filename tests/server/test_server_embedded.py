"""One end-to-end run through the real embedded engine: llama-server with the tiny model."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from server_support import serve

from murakkab_lg.errors import MurakkabError
from murakkab_lg.runtime import Runtime
from murakkab_lg.server import ServeConfig, create_app


@pytest.fixture(scope="module")
def tiny_url(tiny_model: str) -> Iterator[str]:
    """A missing model or llama-server fails the test with its fix (conftest's promise), never skips."""
    from murakkab_lg.backends.engines.llamacpp import find_llama_server

    try:
        find_llama_server()
    except MurakkabError as e:
        pytest.fail(str(e))
    rt = Runtime.embedded(models=["tiny"], default=tiny_model)
    try:
        with serve(create_app(rt, ServeConfig(warm=["smollm2-135m"]), api_keys=())) as url:
            yield url
    finally:
        rt.close()


def test_tiny_model_answers_json_and_stream_through_the_server(tiny_url: str) -> None:
    client = openai.OpenAI(base_url=tiny_url + "/v1", api_key="unused", max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert "smollm2-135m" in ids and "murakkab" in ids
    msgs = [{"role": "user", "content": "Say hello."}]
    raw = client.chat.completions.with_raw_response.create(model="murakkab", messages=msgs, max_tokens=8,
                                                           temperature=0, seed=1)
    resp = raw.parse()
    assert raw.headers["x-murakkab-deployment"] == "smollm2-135m"
    assert resp.choices[0].message.content and 0 < resp.usage.completion_tokens <= 8
    chunks = list(client.chat.completions.create(model="smollm2-135m", messages=msgs, max_tokens=8, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 8
