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


def test_deployment_header_names_the_fallback_that_served(instant_url: str) -> None:
    """The planned deployment cannot start, so its fallback serves: the header must say which did."""
    from murakkab_lg.backends.engines.llamacpp import free_port
    from murakkab_lg.runtime import Runtime
    from murakkab_lg.testing.instant_engine import engine_factory, instant_deployments, synthetic_profiles

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    deps = [*instant_deployments(["fast"], base_url=dead), *instant_deployments(["smart"], base_url=instant_url)]
    rt = Runtime(deps, synthetic_profiles(deps, {"fast": {"classify": 0.6}, "smart": {"classify": 0.9}}),
                 engine_factory=engine_factory, start_timeout_s=0.5)
    assert rt.resolve(Route(intent=Intent("classify"))).name == "fast"  # the plan's choice
    with serve(create_app(rt, ServeConfig(), api_keys=())) as url, httpx.Client(base_url=url) as c:
        for stream in (False, True):
            mark = rt.telemetry.mark()
            body = {"model": "murakkab/classify", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            r = c.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            served = [rec for rec in rt.telemetry.since(mark) if rec.ok]
            assert [rec.deployment for rec in served] == ["smart"] and served[0].fallback_from == "fast"
            assert r.headers["x-murakkab-deployment"] == "smart"
    rt.close()
