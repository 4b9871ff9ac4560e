"""A long OpenRouter outage through the real web service and dispatcher: the run is requeued, waits
while the host's provider breaker is open, then resumes from its last finished stage."""

from __future__ import annotations

from pipeline.openrouter.breaker import breaker_path
from tests.e2e.test_dispatch import (  # noqa: F401 - fixtures
    FINISHED,
    body,
    llm_env,
    post_run,
    run_doc,
    servers,
    status,
    wait_for,
)
from tests.fake_openrouter import FakeOpenRouter, Received, Reply, valid
from tests.fake_openrouter import status as answer


def calls_per_stage(fake: FakeOpenRouter) -> list[int]:
    return [sum(1 for r in fake.completions if r.stage == n) for n in range(1, 6)]


def test_a_provider_outage_requeues_the_run_which_completes_when_the_provider_returns(servers, blob, llm,  # noqa: F811
                                                                                       tmp_path):
    def goes_down(r: Received) -> Reply:
        llm.down = True  # from this request on, every completion answers 503
        return answer(503)(r)

    llm.script(valid(), valid(), goes_down)
    out = tmp_path / "outputs"
    server = servers(llm_env(blob, llm), output_dir=out)
    payload: dict[str, object] = dict(body("outage", blob))
    assert post_run(server, payload).status_code == 202

    wait_for(lambda: run_doc(out, "outage")["status"] == "QUEUED" and run_doc(out, "outage")["attempt"] == 1,
             "the run to go back to QUEUED after its retries")
    doc = run_doc(out, "outage")
    assert sorted(doc["stages"]) == ["1", "2"] and doc["error"] is None
    assert doc["usage"]["total"]["calls"] == 2  # what the finished stages cost is on record
    breaker = breaker_path(out / ".state")
    assert breaker.is_file()
    asked = calls_per_stage(llm)
    assert asked[:2] == [1, 1] and asked[2] >= 1

    llm.down = False
    breaker.unlink()  # the cool-down has passed (30 s in production)
    wait_for(lambda: status(server, "outage")["status"] in FINISHED, "the resumed run to finish")

    doc = run_doc(out, "outage")
    assert doc["status"] == "COMPLETED" and doc["attempt"] == 2
    final = calls_per_stage(llm)
    assert final[:2] == [1, 1] and final[3:] == [1, 1]  # zero calls for the finished stages
    assert final[2] == asked[2] + 1
    assert status(server, "outage")["usage"]["calls"] == 5
