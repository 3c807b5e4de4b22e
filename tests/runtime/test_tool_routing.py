"""Calls that carry tools go only where tool-use meets the node's floor (runtime/tool_routing.py)."""

from __future__ import annotations

import pytest

from murakkab_lg.backends.engines import FunctionEngine
from murakkab_lg.catalog.profiles import ProfileStore
from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.runtime import Runtime
from murakkab_lg.runtime.tool_routing import carries_tools, route_tool_call
from murakkab_lg.spec import ApiSettings, Deployment, Intent, Objective, Workflow, WorkflowNode
from murakkab_lg.testing.scripted_engine import synthetic_profile
from murakkab_lg.wire import Route

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
ROWS = [  # answers well, calls tools badly / calls tools well but costs more / best at tools, costs most
    synthetic_profile("talker", quality={"answer": 0.9, "tool-use": 0.4}, energy_per_output_token_j=0.05,
                      tpot_s=0.01),
    synthetic_profile("caller", quality={"answer": 0.7, "tool-use": 0.85}, energy_per_output_token_j=0.2,
                      tpot_s=0.05),
    synthetic_profile("big", quality={"answer": 0.95, "tool-use": 0.95}, energy_per_output_token_j=0.6,
                      tpot_s=0.02),
    synthetic_profile("unmeasured", quality={"answer": 0.99}, energy_per_output_token_j=0.01),
]


def test_which_calls_carry_tools():
    assert carries_tools({"tools": TOOLS})
    assert not carries_tools({"tools": TOOLS, "tool_choice": "none"})
    assert not carries_tools({"tools": []}) and not carries_tools({})


def test_the_floor_is_the_nodes_min_quality_and_the_objective_picks_among_those_that_meet_it():
    floor = Intent("answer", min_quality=0.8)
    assert route_tool_call("talker", Intent("answer"), ROWS) == "talker"  # no floor stated: the plan stands
    assert route_tool_call("big", floor, ROWS) == "big"  # meets it already
    assert route_tool_call("talker", floor, ROWS) == "caller"  # least energy among caller and big
    assert route_tool_call("talker", floor, ROWS, objective=Objective.LATENCY) == "big"
    # unmeasured: no evidence against it, the plan stands (a hosted model is not moved onto a small local one)
    assert route_tool_call("unmeasured", Intent("answer", min_quality=0.9), ROWS) == "unmeasured"


def test_no_deployment_meets_the_floor_names_the_best():
    with pytest.raises(PlanInfeasibleError, match=r"node 'agent'.*best available is 0\.95 \(big\)") as e:
        route_tool_call("talker", Intent("answer", min_quality=0.97), ROWS, node="agent")
    assert e.value.best == 0.95 and e.value.constraint == "min_quality" and "murakkab profile" in str(e.value)


def _runtime():
    served: list[str] = []

    def factory(dep: Deployment, _replica: int) -> FunctionEngine:
        def answer(body: dict) -> dict:
            served.append(dep.name)
            return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        return FunctionEngine(dep.name, answer)

    deps = [Deployment(name=p.deployment, model=p.deployment, engine=ApiSettings(litellm_model=p.deployment))
            for p in ROWS[:3]]
    return Runtime(deps, ProfileStore(ROWS[:3], "synthetic"), engine_factory=factory), served


async def test_the_runtime_moves_only_tool_bearing_calls_and_names_the_best_when_none_qualifies():
    rt, served = _runtime()
    wf = Workflow(name="wf", nodes=(WorkflowNode(name="agent", intent=Intent("answer", min_quality=0.8)),))
    rt.apply(rt.plan(wf))
    route = Route(workflow="wf", node="agent", intent=Intent("answer", min_quality=0.8))
    msgs = [{"role": "user", "content": "hi"}]
    rt.complete({"messages": msgs}, route)
    rt.complete({"messages": msgs, "tools": TOOLS}, route)
    list(rt.stream({"messages": msgs, "tools": TOOLS}, route))
    await rt.acomplete({"messages": msgs, "tools": TOOLS, "tool_choice": "none"}, route)
    assert served == ["talker", "caller", "caller", "talker"]
    rt.complete({"messages": msgs, "tools": TOOLS}, Route(deployment="talker"))  # named: the caller's choice
    assert served[-1] == "talker"
    strict = Route(workflow="wf", node="agent", intent=Intent("answer", min_quality=0.99))
    with pytest.raises(PlanInfeasibleError, match=r"best available is 0\.95 \(big\)"):
        rt.complete({"messages": msgs, "tools": TOOLS}, strict)
    rt.close()
