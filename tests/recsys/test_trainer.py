"""Metrics against RecBole's evaluator on a known ranking, history masking, safe checkpoints and
exact resume after an interruption."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from recbole.model.sequential_recommender import SASRec

from recsys.models import MCLRec
from recsys.trainer import HistoryMask, MCLRecTrainer, RecTrainer


class FixedScores(SASRec):
    """A 'model' whose full-ranking scores are a fixed random table indexed by user."""

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        g = torch.Generator().manual_seed(0)
        self.table = torch.rand(dataset.user_num, self.n_items, generator=g)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        return self.table[interaction[self.USER_ID]].clone()


def naive_metrics(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Leave-one-out metrics by their definitions: rank = 1 + #items scored strictly higher."""
    scores = scores.clone()
    scores[:, 0] = -math.inf  # the padding item is never recommended
    out: dict[str, float] = {}
    ranks = [1 + int((row > row[t]).sum()) for row, t in zip(scores, targets.tolist())]
    for k in (5, 10, 20):
        out[f"hit@{k}"] = sum(r <= k for r in ranks) / len(ranks)
        out[f"ndcg@{k}"] = sum(1 / math.log2(r + 1) for r in ranks if r <= k) / len(ranks)
        out[f"mrr@{k}"] = sum(1 / r for r in ranks if r <= k) / len(ranks)
    return out


def user_histories(dataset: Any, text: Path) -> dict[int, list[int]]:
    """Internal user id -> all internal item ids in time order, from the original text file."""
    out = {}
    for line in text.read_text().splitlines():
        user, *items = line.split()
        uid = int(dataset.token2id("user_id", user))
        out[uid] = [int(i) for i in dataset.token2id("item_id", items)]
    return out


@pytest.mark.parametrize("mask_history", [False, True])
def test_metrics_match_definitions_on_a_known_ranking(
    make_setup: Any, tiny_source: Any, tmp_path: Path, mask_history: bool
) -> None:
    config, dataset, train, valid, test = make_setup(SASRec)
    model = FixedScores(config, train.dataset)
    history = (
        HistoryMask(
            train.dataset,
            valid.dataset,
            uid_field="user_id",
            iid_field="item_id",
            n_users=dataset.user_num,
        )
        if mask_history
        else None
    )
    trainer = RecTrainer(config, model, run_dir=tmp_path, progress=False, history_mask=history)
    got = trainer.evaluate(test, load_best_model=False, phase="test")

    feat = test.dataset.inter_feat
    uids, targets = feat["user_id"], feat["item_id"]
    scores = model.table[uids].clone()
    if mask_history:
        sequences = user_histories(dataset, Path(tiny_source.origin))
        for row, (u, t) in enumerate(zip(uids.tolist(), targets.tolist())):
            before = sequences[u][:-1]  # the test target is the last item
            keep = scores[row, t].item()
            scores[row, before] = -math.inf
            scores[row, t] = keep
    expected = naive_metrics(scores, targets)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-4), key  # RecBole rounds to 4 places


def test_history_mask_by_hand() -> None:
    # user 1: items 5, 6, 7 (train: input [5] -> 6), valid target 7 ... test target 8
    train = SimpleNamespace(
        inter_feat={
            "user_id": torch.tensor([1, 2, 2]),
            "item_id": torch.tensor([6, 3, 4]),
            "item_id_list": torch.tensor([[5, 0, 0], [2, 0, 0], [2, 3, 0]]),
            "item_length": torch.tensor([1, 1, 2]),
        }
    )
    valid = SimpleNamespace(
        inter_feat={"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([7, 9])}
    )
    mask = HistoryMask(train, valid, uid_field="user_id", iid_field="item_id", n_users=3)
    rows, items = mask.items(torch.tensor([2, 1]), "valid")
    assert sorted(zip(rows.tolist(), items.tolist())) == [(0, 2), (0, 3), (0, 4), (1, 5), (1, 6)]
    scores = torch.zeros(2, 10)
    mask.apply(scores, torch.tensor([1, 2]), torch.tensor([8, 3]), "test")
    assert torch.isinf(scores[0, [5, 6, 7]]).all()
    assert torch.isinf(scores[1, [2, 4, 9]]).all()
    assert scores[1, 3] == 0  # the target itself stays (a repeat)
    assert int(torch.isinf(scores).sum()) == 6


# ----------------------------------------------------------------------------- checkpoints


class Interrupt(Exception):
    pass


def _train(make_setup: Any, model_cls: type, run_dir: Path, stop_after: int | None) -> Any:
    config, _, train, valid, _ = make_setup(model_cls, epochs=2, beta=0.1)
    torch.manual_seed(1)
    model = model_cls(config, train.dataset)
    trainer_cls = MCLRecTrainer if model_cls is MCLRec else RecTrainer
    trainer = trainer_cls(config, model, run_dir=run_dir, progress=False, max_batches=2)
    torch.manual_seed(2)
    train.generator.manual_seed(3)

    def callback(epoch: int, score: float) -> None:
        if stop_after is not None and epoch + 1 == stop_after:
            raise Interrupt

    try:
        trainer.fit(train, valid, callback_fn=callback)
    except Interrupt:
        return None
    return trainer


@pytest.mark.parametrize("model_cls", [pytest.param(SASRec, marks=pytest.mark.slow), MCLRec])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(
    make_setup: Any, tmp_path: Path, model_cls: type
) -> None:
    straight = _train(make_setup, model_cls, tmp_path / "a", stop_after=None)
    assert _train(make_setup, model_cls, tmp_path / "b", stop_after=1) is None
    assert len((tmp_path / "b" / "history.csv").read_text().splitlines()) == 2  # header + 1
    resumed = _train(make_setup, model_cls, tmp_path / "b", stop_after=None)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    assert straight.history[-1]["train/loss"] == pytest.approx(resumed.history[-1]["train/loss"])

    # both files are plain state_dicts / tensors: torch.load(weights_only=True) works
    weights = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    state = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    assert set(weights) == set(straight.model.state_dict())
    assert state["epoch"] == 2
    if model_cls is MCLRec:
        assert any(k.startswith("augmenter_1.") for k in weights)
        assert set(state["optimizers"]) == {"optimizer", "augmenter_optimizer"}


# ----------------------------------------------------------------------------- small fixes


def test_evaluate_defaults_to_the_test_phase_after_a_validation(
    make_setup: Any, tmp_path: Path
) -> None:
    config, dataset, train, valid, test = make_setup(SASRec)
    model = FixedScores(config, train.dataset)
    history = HistoryMask(
        train.dataset, valid.dataset, uid_field="user_id", iid_field="item_id",
        n_users=dataset.user_num,
    )  # fmt: skip
    trainer = RecTrainer(config, model, run_dir=tmp_path, progress=False, history_mask=history)
    as_test = trainer.evaluate(test, load_best_model=False, phase="test")
    as_valid = trainer.evaluate(test, load_best_model=False, phase="valid")
    assert as_test != as_valid  # the two histories mask different items here
    trainer._valid_epoch(valid)  # what fit does every epoch
    assert trainer.evaluate(test, load_best_model=False) == as_test
    with pytest.raises(ValueError, match="phase"):
        trainer.evaluate(test, load_best_model=False, phase="tset")


@pytest.mark.parametrize("model_name", ["CL4SRec", "MCLRec", "MCLRec-J"])
def test_a_batch_of_one_row_trains_on_the_recommendation_loss_only(
    make_setup: Any, tmp_path: Path, model_name: str
) -> None:
    from recsys.models import CL4SRec

    model_cls = CL4SRec if model_name == "CL4SRec" else MCLRec
    config, _, train, _, _ = make_setup(
        model_cls, beta=0.5, cl_weight=0.2, joint=model_name == "MCLRec-J"
    )
    torch.manual_seed(0)
    model = model_cls(config, train.dataset)
    one = next(iter(train))[torch.arange(1)]
    if model_cls is MCLRec:
        trainer: Any = MCLRecTrainer(config, model, run_dir=tmp_path, progress=False)
    else:
        trainer = RecTrainer(config, model, run_dir=tmp_path, progress=False)
    phi = [p.detach().clone() for n, p in model.named_parameters() if "augmenter" in n]
    if model_name == "MCLRec":
        record = trainer.train_step(one)
        assert not any(k.startswith("augmenter/") for k in record)  # step 2 skipped
    else:
        trainer.optimizer.zero_grad()
        loss = trainer._loss_and_record(one)
        loss.backward()
        trainer.optimizer.step()
    terms = model.loss_terms(one, model.make_views(one), "joint")
    assert all(torch.isfinite(v) for v in terms.values())
    assert float(terms["loss"].detach()) == pytest.approx(float(terms["loss/rec"].detach()))
    after = [p.detach() for n, p in model.named_parameters() if "augmenter" in n]
    assert all(torch.equal(a, b) for a, b in zip(phi, after))  # augmenters untouched
