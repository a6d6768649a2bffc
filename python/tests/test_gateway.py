"""`pointsman serve` end to end, with the real `openai` client (max_retries=0) and curl.

Three stub upstreams (`pointsman-testkit stub`, beside the CLI binary) stand for three models of
llmrouter_dc; the router is a kNN trained by `pointsman train` (k = 10), and a second gateway
serves a cold LinUCB learner made with the Python package. Every process listens on 127.0.0.1
with an ephemeral port, works in a temporary folder, and is stopped at the end, also on failure.
"""

import json
import re
import selectors
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import openai
import pytest

import pointsman

MODELS = {  # model -> USD per Mtok (in = out), as the gateway configuration prices them
    "gemma-2-9b-it": 0.1,
    "llama-3.1-8b-instruct": 0.2,
    "llama-3.1-nemotron-51b-instruct": 0.9,
}
CHEAPEST = "gemma-2-9b-it"
PROMPT = "Prove that the square root of two is irrational."


def read_line(proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> str:
    """The first stdout line of `proc`, or fail with its log."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        pytest.fail(f"{proc.args[:2]} did not start: {log.read_text()}")
    return line.strip()


class Processes:
    """Started processes (stderr to files in `tmp`), all stopped (SIGTERM, then SIGKILL) by
    `stop`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> tuple[subprocess.Popen, str]:
        log = self.tmp / f"{Path(args[0]).name}-{len(self.procs)}.log"
        with open(log, "w") as err:
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, **kw)
        self.procs.append(p)
        line = read_line(p, log)
        m = re.search(r"http://(127\.0\.0\.1:\d+)", line)
        assert m, line
        return p, f"http://{m.group(1)}"

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()


def http(method: str, url: str, body=None) -> tuple[int, dict, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metric(text: str, name: str) -> float:
    """The value of the sample `name` (with its labels, in the order the gateway writes them)."""
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Gateway:
    def __init__(self, url: str, proc: subprocess.Popen, stubs: dict, log: Path) -> None:
        self.url = url
        self.proc = proc
        self.stubs = stubs  # model -> stub URL
        self.log = log
        self.client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)

    def fault(self, model: str, fault) -> None:
        status, _, _ = http("POST", self.stubs[model] + "/_stub/fault", {"fault": fault})
        assert status == 204

    def stub_requests(self, model: str) -> int:
        return json.loads(http("GET", self.stubs[model] + "/_stub/stats")[2])["requests"]

    def metrics(self) -> str:
        return http("GET", self.url + "/metrics")[2].decode()

    def create(self, **kw):
        kw.setdefault("model", "pointsman")
        kw.setdefault("messages", [{"role": "user", "content": PROMPT}])
        return self.client.chat.completions.with_raw_response.create(**kw)


def start_stack(procs: Processes, tmp: Path, cli: Path, testkit: Path, router: Path, extra: str = "") -> Gateway:
    stubs = {}
    upstreams = ""
    for model, price in MODELS.items():
        _, url = procs.start([str(testkit), "stub", "--name", model, "--hang-secs", "20"])
        stubs[model] = url
        upstreams += (
            f'[[upstreams]]\nmodel = "{model}"\nbase_url = "{url}/v1"\n'
            f"input_usd_per_mtok = {price}\noutput_usd_per_mtok = {price}\ntimeout_ms = 1500\n\n"
        )
    log = tmp / "decisions.jsonl"
    config = tmp / "gateway.toml"
    config.write_text(
        f'listen = "127.0.0.1:0"\nrouter = "{router.name}"\n{extra}\n'
        "[policies.cheap]\ncost_weight = 1e6\n\n"
        "[limits]\nmax_body_bytes = 65536\n\n"
        "[fallback]\nbreaker_failures = 1000\n\n"
        f'[log]\npath = "{log.name}"\n\n{upstreams}'
    )
    proc, url = procs.start([str(cli), "serve", "--config", str(config)], cwd=tmp)
    return Gateway(url, proc, stubs, log)


@pytest.fixture(scope="module")
def gw(tmp_path_factory, cli: Path, testkit: Path, data_dir: Path):
    tmp = tmp_path_factory.mktemp("gateway")
    router = tmp / "knn.safetensors"
    subprocess.run(
        [str(cli), "--quiet", "train", "--data", str(data_dir / "llmrouter_dc"), "--router", "knn",
         "--config", '{"k": 10}', "--out", str(router)],
        check=True, timeout=600,
    )
    procs = Processes(tmp)
    try:
        yield start_stack(procs, tmp, cli, testkit, router)
    finally:
        procs.stop()


@pytest.fixture(scope="module")
def learner(tmp_path_factory, cli: Path, testkit: Path):
    tmp = tmp_path_factory.mktemp("learner")
    router = tmp / "linucb.safetensors"
    pointsman.LinUcbRouter(
        [{"id": m, "input_usd_per_mtok": p, "output_usd_per_mtok": p, "default_output_tokens": 256.0}
         for m, p in MODELS.items()],
        384,
        embedding_model="all-MiniLM-L6-v2",
    ).save(str(router))
    procs = Processes(tmp)
    try:
        yield start_stack(procs, tmp, cli, testkit, router, "[learning]\nsave_every = 4\n")
    finally:
        procs.stop()


def test_non_streaming_answer_headers_and_cost(gw: Gateway) -> None:
    raw = gw.create()
    c = raw.parse()
    chosen = raw.headers["x-pointsman-model"]
    assert chosen in MODELS and c.model == chosen
    assert raw.headers["x-pointsman-chosen"] == chosen
    assert raw.headers["x-pointsman-runner-up"] in MODELS
    float(raw.headers["x-pointsman-utility"])
    assert raw.headers["x-request-id"].startswith("pm-")
    assert c.choices[0].message.content.startswith(f"{chosen} answers {chosen}: ")
    cost = c.usage.model_extra["cost_usd"]
    tokens = c.usage.prompt_tokens + c.usage.completion_tokens
    assert cost == pytest.approx(MODELS[chosen] * tokens / 1e6)
    assert float(raw.headers["x-pointsman-cost-usd"]) == pytest.approx(cost)


def test_streaming_passes_chunks_and_ends_with_cost(gw: Gateway) -> None:
    stream = gw.client.chat.completions.create(
        model="pointsman", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    chunks = list(stream)
    assert len(chunks) >= 4
    model = chunks[0].model
    assert all(ch.model == model for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.startswith(f"{model} answers {model}: ")
    assert chunks[-1].choices == [] and chunks[-1].usage.model_extra["cost_usd"] > 0


def test_routing_options_policies_and_passthrough(gw: Gateway) -> None:
    assert gw.create(model="pointsman:cheap").parse().model == CHEAPEST
    raw = gw.create(extra_body={"pointsman": {"cost_weight": 1e6, "session_id": "s1", "tenant": "t1"}})
    assert raw.parse().model == CHEAPEST
    raw = gw.create(extra_headers={"x-pointsman-allowed-models": "llama-3.1-8b-instruct"})
    assert raw.parse().model == "llama-3.1-8b-instruct"
    raw = gw.create(model="llama-3.1-nemotron-51b-instruct")
    assert raw.parse().model == "llama-3.1-nemotron-51b-instruct"
    assert "x-pointsman-chosen" not in raw.headers
    assert 'pointsman_session_requests_total{tenant="t1"} 1' in gw.metrics()


def test_models_lists_policies_and_upstreams(gw: Gateway) -> None:
    ids = [m.id for m in gw.client.models.list()]
    assert ids == ["pointsman", "pointsman:cheap", *MODELS]


def test_error_statuses(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        gw.create(messages=[])
    assert e.value.code == "missing_messages"
    with pytest.raises(openai.NotFoundError) as e:
        gw.create(model="gpt-nope")
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        gw.create(model="pointsman:nope")
    with pytest.raises(openai.APIStatusError) as e:
        gw.create(messages=[{"role": "user", "content": "x" * 100_000}])
    assert e.value.status_code == 413 and e.value.code == "request_too_large"
    with pytest.raises(openai.APIStatusError) as e:
        gw.create(extra_body={"pointsman": {"max_cost": 1e-12}})
    assert e.value.status_code == 402 and e.value.code == "budget_exhausted"
    try:
        for m in MODELS:
            gw.fault(m, "fail")
        with pytest.raises(openai.InternalServerError) as e:
            gw.create()
        assert e.value.status_code == 502 and e.value.code == "upstream_failed"
        for m in MODELS:
            gw.fault(m, "hang")
        with pytest.raises(openai.InternalServerError) as e:
            gw.create()
        assert e.value.status_code == 504 and e.value.code == "upstream_timeout"
    finally:
        for m in MODELS:
            gw.fault(m, None)


@pytest.mark.parametrize("fault", ["fail", "429", "badjson", "hang"])
def test_each_upstream_fault_falls_back(gw: Gateway, fault: str) -> None:
    chosen = gw.create().headers["x-pointsman-model"]
    gw.fault(chosen, fault)
    try:
        before = gw.stub_requests(chosen)
        raw = gw.create()
        assert raw.headers["x-pointsman-chosen"] == chosen
        assert raw.headers["x-pointsman-model"] != chosen
        assert raw.headers["x-pointsman-tries"] == "2"
        assert raw.parse().model == raw.headers["x-pointsman-model"]
        assert gw.stub_requests(chosen) == before + 1
        # A stream falls back too while nothing has been sent.
        chunks = list(gw.client.chat.completions.create(
            model="pointsman", messages=[{"role": "user", "content": PROMPT}], stream=True))
        assert chunks[0].model != chosen
    finally:
        gw.fault(chosen, None)
    errors = metric(gw.metrics(), "pointsman_upstream_errors_total{model=\"%s\",kind=\"%s\"}" % (
        chosen, {"fail": "status", "429": "rate_limited", "badjson": "malformed", "hang": "timeout"}[fault]))
    assert errors >= 1


def test_a_stream_that_breaks_after_its_first_byte_is_not_retried(gw: Gateway) -> None:
    chosen = gw.create().headers["x-pointsman-model"]
    gw.fault(chosen, "hang-stream")
    try:
        with pytest.raises(openai.APIError, match="during the stream"):
            list(gw.client.chat.completions.create(
                model="pointsman", messages=[{"role": "user", "content": PROMPT}], stream=True))
    finally:
        gw.fault(chosen, None)


def test_plain_http_with_curl(gw: Gateway) -> None:
    def curl(*args: str) -> str:
        return subprocess.run(["curl", "-sS", "--max-time", "30", *args], check=True, capture_output=True, text=True).stdout

    health = json.loads(curl(gw.url + "/healthz"))
    assert health["status"] == "ok" and health["router"]["kind"] == "knn"
    assert "pointsman_requests_total" in curl(gw.url + "/metrics")
    out = curl("-i", "-H", "content-type: application/json", "-d",
               json.dumps({"model": "pointsman", "messages": [{"role": "user", "content": "Hi"}]}),
               gw.url + "/v1/chat/completions")
    assert out.startswith("HTTP/1.1 200") and "x-pointsman-model:" in out.lower()
    out = curl("-i", "-d", "{oops", gw.url + "/v1/chat/completions")
    assert out.startswith("HTTP/1.1 400") and '"code":"invalid_json"' in out
    assert curl("-o", "/dev/null", "-w", "%{http_code}", gw.url + "/nope") == "404"


def test_feedback_reaches_the_learner_and_survives_sighup(learner: Gateway) -> None:
    gw = learner
    ids = [gw.create(messages=[{"role": "user", "content": f"question {i}"}]).headers["x-request-id"] for i in range(6)]
    for n, rid in enumerate(ids, 1):
        status, _, body = http("POST", gw.url + "/v1/feedback", {"request_id": rid, "quality": 0.75})
        assert status == 200, body
        assert json.loads(body) == {"request_id": rid, "learned": True, "observations": n}
    assert metric(gw.metrics(), "pointsman_learner_observations") == 6
    status, _, body = http("POST", gw.url + "/v1/feedback", {"request_id": ids[0], "quality": 1})
    assert status == 409
    status, _, body = http("POST", gw.url + "/v1/feedback", {"request_id": "pm-unknown", "quality": 1})
    assert status == 404
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while json.loads(http("GET", gw.url + "/healthz")[2])["router"]["generation"] != 1:
        assert time.time() < deadline, "SIGHUP did not reload"
        time.sleep(0.05)
    health = json.loads(http("GET", gw.url + "/healthz")[2])
    assert health["router"]["observations"] == 6
    assert metric(gw.metrics(), 'pointsman_reloads_total{outcome="ok"}') == 1
    # The decision log joins the feedback to its decision.
    events = [json.loads(line) for line in gw.log.read_text().splitlines()]
    decisions = {e["request_id"]: e for e in events if e["event"] == "decision"}
    learned = [e for e in events if e["event"] == "feedback" and e["learned"]]
    assert len(learned) == 6 and all(f["request_id"] in decisions for f in learned)
