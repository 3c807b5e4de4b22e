"""The interception adapter's wire format (model, `murakkab` field, percent-encoded headers) as the
server reads it: wrap(graph, runtime="http://...") must land calls where the in-process Runtime would."""

from __future__ import annotations

import httpx
from server_support import make_runtime, serve

from murakkab_lg.server import ServeConfig, create_app
from murakkab_lg.spec import Intent, Workflow, WorkflowNode
from murakkab_lg.wire import Route, route_fields, route_headers, route_model


def test_wire_encoded_routes_resolve_like_in_process(instant_url: str) -> None:
    rt = make_runtime(instant_url, default="fast")
    node = WorkflowNode(name="research/fix code", intent=Intent("code", min_quality=0.5))
    wf = Workflow(name="support", nodes=(node,))
    rt.apply(rt.plan(wf), start=False)
    routes = [
        Route(workflow="support", node="research/fix code", intent=Intent("code", min_quality=0.5)),
        Route(workflow="support", node="triage", intent=Intent("classify", min_quality=0.8)),
        Route(workflow="support", node="chit chat"),  # no intent: the default
        Route(deployment="smart"),
    ]
    with serve(create_app(rt, ServeConfig(), api_keys=())) as url:
        for route in routes:
            body = {"model": route_model(route), "murakkab": route_fields(route),
                    "messages": [{"role": "user", "content": "hi"}]}
            mark = rt.telemetry.mark()
            r = httpx.post(url + "/v1/chat/completions", json=body, headers=route_headers(route))
            assert r.status_code == 200, r.text
            rec = rt.telemetry.since(mark)[-1]
            assert r.headers["x-murakkab-deployment"] == rt.resolve(route).name == rec.deployment
            assert (rec.workflow, rec.node) == (route.workflow, route.node)
        # Headers alone (percent-encoded node path) route a planned node too.
        plain = {"model": "murakkab/default", "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(url + "/v1/chat/completions", json=plain, headers=route_headers(routes[0]))
        assert r.headers["x-murakkab-deployment"] == "smart"
    rt.close()
