"""The fast encoder path, CL4SRec and MCLRec models, and MCLRec's alternating update."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import torch
from recbole.model.sequential_recommender import SASRec

from recsys.augment import Views
from recsys.encoder import GROUP_COST, FastSASRec, plan_length_groups, sasrec_encode
from recsys.losses import contrastive_regularizer, pair_info_nce, pair_scores
from recsys.models import CL4SRec, MCLRec
from recsys.trainer import MCLRecTrainer


def first_batch(train: Any, n: int = 16) -> Any:
    return next(iter(train))[torch.arange(n)]


def odd_sequences(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's sequences with holes (mask-augmentation style), a masked first position, a
    masked last position and a length-1 row, to exercise fully masked attention rows and the
    packing of masked items (every row keeps an item, as the augmentation guarantees)."""
    seq, length = batch["item_id_list"].clone(), batch["item_length"].clone()
    long_rows = (length >= 3).nonzero().squeeze(1).tolist()
    a, b = long_rows[:2]
    seq[a, 0] = 0  # first item masked: a fully masked attention row at position 0
    seq[b, 1 : int(length[b]) : 2] = 0
    c = next(r for r in range(len(length)) if r not in (a, b))
    length[c] = 1
    seq[c, 1:] = 0
    d = next(r for r in long_rows if r not in (a, b, c))
    seq[d, int(length[d]) - 1] = 0  # the output position itself masked: it must stay packed
    return seq, length


# ----------------------------------------------------------------------------- encoder


@pytest.mark.parametrize("group_cost", [1e12, 0])  # one attention group; one per length
def test_fast_encoder_equals_recbole_forward(
    make_setup: Any, monkeypatch: pytest.MonkeyPatch, group_cost: float
) -> None:
    monkeypatch.setattr("recsys.encoder.GROUP_COST", group_cost)
    monkeypatch.setattr("recsys.encoder.PACK_BUCKET", 1)  # no padding positions packed
    config, _, train, _, _ = make_setup(SASRec)
    torch.manual_seed(0)
    model = SASRec(config, train.dataset).eval()
    batch = first_batch(train)
    for seq, length in [(batch["item_id_list"], batch["item_length"]), odd_sequences(batch)]:
        with torch.no_grad():
            expected = model.forward(seq, length)
            got = sasrec_encode(model, seq, length)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_fast_encoder_gradients_match_and_state_dicts_are_shared(
    make_setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("recsys.encoder.GROUP_COST", 0)  # a group per distinct length
    config, _, train, _, _ = make_setup(SASRec, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    torch.manual_seed(0)
    slow = SASRec(config, train.dataset)
    fast = FastSASRec(config, train.dataset)
    fast.load_state_dict(slow.state_dict())  # same parameter names and shapes
    batch = first_batch(train)
    slow.calculate_loss(batch).backward()
    fast.calculate_loss(batch).backward()
    for (name, p), q in zip(slow.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def _plan_cost(lengths: list[int], ends: list[int], hidden: int, group_cost: float) -> float:
    cost, start = 0.0, 0
    for end in ends:
        longest = lengths[end - 1]
        cost += (end - start) * longest * (longest + hidden) + group_cost
        start = end
    return cost


@pytest.mark.parametrize("seed", range(5))
def test_length_group_plan_is_the_cheapest_partition(seed: int) -> None:
    """Against every partition of the distinct lengths into contiguous groups (brute force)."""
    gen = torch.Generator().manual_seed(seed)
    values = (torch.randperm(50, generator=gen)[:11] + 1).tolist()  # 11 distinct lengths
    lengths = sorted(values[i] for i in torch.randint(0, 11, (80,), generator=gen).tolist())
    distinct_ends = [i + 1 for i in range(len(lengths)) if i + 1 == len(lengths)
                     or lengths[i] != lengths[i + 1]]  # fmt: skip
    cuts = distinct_ends[:-1]
    cheapest = min(
        _plan_cost(lengths, [*chosen, len(lengths)], 64, GROUP_COST)
        for r in range(len(cuts) + 1)
        for chosen in itertools.combinations(cuts, r)
    )
    plan = plan_length_groups(lengths, 64)
    assert plan[-1] == len(lengths)
    assert plan == sorted(set(plan))
    assert set(plan) <= set(distinct_ends)  # cuts only between different lengths
    assert _plan_cost(lengths, plan, 64, GROUP_COST) == pytest.approx(cheapest)


def test_length_group_plan_edges() -> None:
    assert plan_length_groups([], 64) == []
    assert plan_length_groups([7], 64) == [1]
    assert plan_length_groups([1] * 500 + [50], 64) == [500, 501]  # the outlier alone
    assert plan_length_groups([4] * 10 + [5] * 10, 64) == [20]  # too small to split


# ----------------------------------------------------------------------------- models


def test_mclrec_structure_and_initialisation(make_setup: Any) -> None:
    config, _, train, _, _ = make_setup(MCLRec)
    model = MCLRec(config, train.dataset)
    layers = model.augmenter_1.layers
    assert [(m.in_features, m.out_features) for m in layers] == [(64, 32), (32, 16), (16, 64)]
    assert model.augmenter_1 is not model.augmenter_2
    # PyTorch's default init (uniform, non-zero bias), not SASRec's N(0, 0.02) / zero bias
    assert layers[0].bias.abs().sum() > 0
    assert layers[0].weight.std() > 0.05
    z = model.augmenter_2(torch.randn(5, 64))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    names = {n for n, _ in model.named_parameters()}
    encoder = {id(p) for p in model.encoder_parameters()}
    augmenters = {id(p) for p in model.augmenter_parameters()}
    assert not encoder & augmenters
    assert len(encoder) + len(augmenters) == len(names)
    assert (model.cl_weight, model.beta, model.tau, model.sim) == (0.0, 0.01, 1.0, "dot")


def fixed_views(batch: Any, seed: int = 0) -> Views:
    from recsys.augment import augment_pair

    g = torch.Generator().manual_seed(seed)
    return augment_pair(batch["item_id_list"], batch["item_length"], generator=g)


def test_mclrec_loss_composition(make_setup: Any) -> None:
    config, _, train, _, _ = make_setup(
        MCLRec, cl_weight=0.3, beta=0.2, tau=0.5, hidden_dropout_prob=0.0, attn_dropout_prob=0.0
    )
    torch.manual_seed(0)
    model = MCLRec(config, train.dataset)
    batch = first_batch(train)
    views = fixed_views(batch)
    enc = model.loss_terms(batch, views, "encoder")
    aug = model.loss_terms(batch, views, "augmenter")
    # by hand, from the definitions (methods.md 2.5)
    h = model.forward(batch["item_id_list"], batch["item_length"])
    h1, h2 = model.forward(views.seq1, views.len1), model.forward(views.seq2, views.len2)
    z1, z2 = model.augmenter_1(h1), model.augmenter_2(h2)
    rec = torch.nn.functional.cross_entropy(h @ model.item_embedding.weight.T, batch["item_id"])
    cl1 = pair_info_nce(h1, h2, 0.5)
    cl2 = pair_info_nce(h1, z2, 1.0) + pair_info_nce(h2, z1, 1.0) + pair_info_nce(z1, z2, 1.0)
    reg = 0.1 * sum(contrastive_regularizer(x, y, 0.5) for x, y in ((h1, z2), (h2, z1), (z1, z2)))
    torch.testing.assert_close(
        enc["loss"], rec + 0.3 * cl1 + 0.2 * (cl2 + reg), rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(aug["loss"], 0.3 * cl1 + cl2 + reg, rtol=1e-4, atol=1e-4)
    assert "loss/rec" not in aug


@pytest.mark.parametrize("model_cls", [CL4SRec, MCLRec])
def test_every_parameter_gets_a_gradient(make_setup: Any, model_cls: type) -> None:
    config, _, train, _, _ = make_setup(model_cls, beta=0.1)
    model = model_cls(config, train.dataset)
    loss = model.calculate_loss(first_batch(train))
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        if name == "position_embedding.weight":
            continue  # positions beyond the longest tiny sequence get no gradient
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert set(model.last_terms) >= {"loss", "loss/rec"}


# ----------------------------------------------------------------------------- alternating update


def _snapshot(params: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_alternating_update_steps_encoder_twice_and_augmenters_once(
    make_setup: Any, tmp_path: Any
) -> None:
    config, _, train, _, _ = make_setup(MCLRec, beta=0.5, cl_weight=0.1)
    torch.manual_seed(0)
    model = MCLRec(config, train.dataset)
    trainer = MCLRecTrainer(config, model, run_dir=tmp_path, progress=False)
    calls: list[tuple[str, list[torch.Tensor], list[torch.Tensor]]] = []
    original = model.loss_terms

    def spy(interaction: Any, views: Views, step: str = "joint") -> Any:
        calls.append(
            (step, _snapshot(model.encoder_parameters()), _snapshot(model.augmenter_parameters()))
        )
        return original(interaction, views, step)  # type: ignore[arg-type]

    model.loss_terms = spy  # type: ignore[method-assign]
    theta0 = _snapshot(model.encoder_parameters())
    phi0 = _snapshot(model.augmenter_parameters())
    trainer.train_step_reference(first_batch(train))  # train_step: tested equal below
    theta3 = _snapshot(model.encoder_parameters())
    phi3 = _snapshot(model.augmenter_parameters())

    assert [c[0] for c in calls] == ["encoder", "augmenter", "encoder"]
    (_, th_a, ph_a), (_, th_b, ph_b), (_, th_c, ph_c) = calls
    assert _same(th_a, theta0)
    assert _same(ph_a, phi0)
    # step 1 moved the encoder only; step 2 sees the updated encoder
    assert not _same(th_b, theta0)
    assert _same(ph_b, phi0)
    # step 2 moved the augmenters only
    assert _same(th_c, th_b)
    assert not _same(ph_c, phi0)
    # step 3 moved the encoder again, not the augmenters
    assert not _same(theta3, th_c)
    assert _same(phi3, ph_c)
    # every augmenter parameter moved exactly once; requires_grad restored
    assert all(not torch.equal(a, b) for a, b in zip(phi0, phi3))
    assert all(p.requires_grad for p in model.parameters())


def reference_batch_update(model: MCLRec, batch: Any, views: Views, lr: float) -> None:
    """The official Trainer's three steps written out with plain autograd: encoder gradients
    are computed in step 2 too, and thrown away (zeroed) before step 3."""
    encoder = list(model.encoder_parameters())
    augmenters = list(model.augmenter_parameters())
    opt_enc = torch.optim.SGD(encoder, lr=lr)
    opt_aug = torch.optim.SGD(augmenters, lr=lr)

    def loss(step: int) -> torch.Tensor:
        h = model.forward(batch["item_id_list"], batch["item_length"])
        h1, h2 = model.forward(views.seq1, views.len1), model.forward(views.seq2, views.len2)
        z1, z2 = model.augmenter_1(h1), model.augmenter_2(h2)
        cl1 = pair_info_nce(h1, h2, model.tau)
        cl2 = pair_info_nce(h1, z2) + pair_info_nce(h2, z1) + pair_info_nce(z1, z2)
        pairs = ((h1, z2), (h2, z1), (z1, z2))
        reg = 0.1 * sum(contrastive_regularizer(x, y, model.tau) for x, y in pairs)
        rec = torch.nn.functional.cross_entropy(h @ model.item_embedding.weight.T, batch["item_id"])
        if step == 2:
            return 0 * rec + model.cl_weight * cl1 + 1.0 * (cl2 + reg)
        return rec + model.cl_weight * cl1 + model.beta * (cl2 + reg)

    for p in augmenters:
        p.requires_grad_(False)
    opt_enc.zero_grad()
    loss(1).backward()
    opt_enc.step()
    for p in augmenters:
        p.requires_grad_(True)
    opt_aug.zero_grad()
    loss(2).backward()  # also fills encoder gradients
    opt_aug.step()
    for p in augmenters:
        p.requires_grad_(False)
    opt_enc.zero_grad()
    loss(3).backward()
    opt_enc.step()
    for p in augmenters:
        p.requires_grad_(True)


def test_alternating_update_matches_the_official_schedule(make_setup: Any, tmp_path: Any) -> None:
    # SGD: Adam's first step is lr * sign(gradient), which hides the gradients' values
    config, _, train, _, _ = make_setup(
        MCLRec,
        beta=0.5,
        cl_weight=0.1,
        hidden_dropout_prob=0.0,
        attn_dropout_prob=0.0,
        learner="sgd",
        learning_rate=0.05,
    )
    torch.manual_seed(0)
    model = MCLRec(config, train.dataset)
    reference = copy.deepcopy(model)
    reference_start = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = first_batch(train)
    views = fixed_views(batch, seed=3)
    model.make_views = lambda interaction: views  # type: ignore[method-assign]
    trainer = MCLRecTrainer(config, model, run_dir=tmp_path, progress=False)
    trainer.train_step(batch)
    reference_batch_update(reference, batch, views, lr=config["learning_rate"])
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
        if "augmenter" in name:
            assert not torch.equal(p, reference_start[name]), name


def test_joint_variant_uses_one_optimizer_over_everything(make_setup: Any, tmp_path: Any) -> None:
    config, _, train, _, _ = make_setup(MCLRec, beta=0.5, joint=True)
    model = MCLRec(config, train.dataset)
    trainer = MCLRecTrainer(config, model, run_dir=tmp_path, progress=False, max_batches=2)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in model.parameters()}
    phi0 = _snapshot(model.augmenter_parameters())
    trainer._train_epoch(train, 0)
    assert not _same(phi0, _snapshot(model.augmenter_parameters()))


def test_fast_dropout_has_dropouts_law() -> None:
    from recsys.encoder import fast_dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    for p in (0.1, 0.5):
        y = fast_dropout(x, p, True)
        kept = y != 0
        assert abs(float(kept.float().mean()) - (1 - p)) < 0.005
        torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    assert fast_dropout(x, 0.5, False) is x
    assert fast_dropout(x, 1.0, True).eq(0).all()


# ----------------------------------------------------------------------------- SASRec2Step


def test_sasrec2step_is_two_adam_steps_on_the_recommendation_loss(
    make_setup: Any, tmp_path: Any
) -> None:
    config, _, train, _, _ = make_setup(
        MCLRec, beta=0.0, cl_weight=0.0, hidden_dropout_prob=0.0, attn_dropout_prob=0.0
    )
    torch.manual_seed(0)
    model = MCLRec(config, train.dataset)
    reference = FastSASRec(config, train.dataset)
    reference.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("augmenter_")}
    )
    phi0 = _snapshot(model.augmenter_parameters())
    trainer = MCLRecTrainer(config, model, run_dir=tmp_path, progress=False)
    opt = torch.optim.Adam(reference.parameters(), lr=config["learning_rate"])
    batch = first_batch(train)
    for _ in range(2):  # two batches
        trainer.train_step(batch)
        for _ in range(2):  # two Adam steps per batch
            opt.zero_grad()
            reference.calculate_loss(batch).backward()
            opt.step()
    for (name, p), q in zip(reference.named_parameters(), model.encoder_parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
    assert _same(phi0, _snapshot(model.augmenter_parameters()))  # unused, never stepped


# ----------------------------------------------------------------------------- DuoRec


def test_duorec_same_target_positives(make_setup: Any) -> None:
    from recsys.models import DuoRec

    config, _, train, _, _ = make_setup(DuoRec)
    model = DuoRec(config, train.dataset)
    batch = next(iter(train))
    feat = train.dataset.inter_feat
    targets, rows = batch["item_id"], batch[DuoRec.ROW_FIELD]
    counts = torch.bincount(feat["item_id"], minlength=model.n_items)[targets]
    seen_other = torch.zeros(len(targets), dtype=torch.bool)
    for seed in range(20):
        seq, length = model.same_target(batch, torch.Generator().manual_seed(seed))
        for i in range(len(targets)):
            matches = [
                j for j in range(len(feat))
                if feat["item_id"][j] == targets[i]
                and int(feat["item_length"][j]) == int(length[i])
                and torch.equal(feat["item_id_list"][j], seq[i])
            ]  # fmt: skip
            assert matches, i  # a training sequence with the same target
            if counts[i] > 1:
                assert any(j != int(rows[i]) for j in matches)  # never itself when others exist
            seen_other[i] |= any(j != int(rows[i]) for j in matches)
    assert seen_other[counts > 1].all()


@pytest.mark.parametrize("contrast", ["us_x", "us", "un", "su"])
def test_duorec_loss_composition(make_setup: Any, contrast: str) -> None:
    from recsys.models import DuoRec

    config, _, train, _, _ = make_setup(
        DuoRec, contrast=contrast, lmd=0.3, lmd_sem=0.2, tau=0.5,
        hidden_dropout_prob=0.0, attn_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = DuoRec(config, train.dataset)
    batch = first_batch(train)
    torch.manual_seed(5)
    terms = model.training_terms(batch)
    torch.manual_seed(5)
    sem_seq, sem_len = model.same_target(batch)
    h = model.forward(batch["item_id_list"], batch["item_length"])  # dropout off: h' = h
    h_sem = model.forward(sem_seq, sem_len)
    rec = torch.nn.functional.cross_entropy(h @ model.item_embedding.weight.T, batch["item_id"])
    nce = pair_info_nce(h, h_sem, 0.5)
    expected = {
        "us_x": rec + 0.2 * nce,
        "us": rec + 0.3 * pair_info_nce(h, h, 0.5) + 0.2 * nce,
        "un": rec + 0.3 * pair_info_nce(h, h, 0.5),
        "su": rec + 0.2 * nce,
    }[contrast]
    torch.testing.assert_close(terms["loss"], expected, rtol=1e-4, atol=1e-4)
    terms["loss"].backward()
    for name, p in model.named_parameters():
        if name != "position_embedding.weight":
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name


def regularizer_by_definition(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """R on the (2B, 2B - 2) negatives, as methods.md 2.5 writes it (no closed form, no argmax)."""
    pos, neg = pair_scores(a, b, tau)
    hardest = neg.max(dim=1).values
    low, high = torch.minimum(pos, hardest), torch.maximum(pos, hardest)
    return (pos - low).clamp(min=0).mean() + (high[:, None] - neg).clamp(min=0).mean()


@pytest.mark.parametrize("cl_weight", [0.1, 0.0])  # lambda = 0: L_cl1 without a graph
def test_optimised_step_gives_the_parameters_of_the_official_schedule(
    make_setup: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, cl_weight: float
) -> None:
    """The optimised step against the straightforward one: three passes of RecBole's own
    forward (no packing, no length groups) and R by its definition."""
    config, _, train, _, _ = make_setup(
        MCLRec, beta=0.5, cl_weight=cl_weight, hidden_dropout_prob=0.0, attn_dropout_prob=0.0
    )
    torch.manual_seed(0)
    fast = MCLRec(config, train.dataset)
    slow = copy.deepcopy(fast)
    slow.fast_encoder = False
    fast_trainer = MCLRecTrainer(config, fast, run_dir=tmp_path / "a", progress=False)
    slow_trainer = MCLRecTrainer(config, slow, run_dir=tmp_path / "b", progress=False)
    batches = [b for _, b in zip(range(3), train)]
    for i, batch in enumerate(batches):
        torch.manual_seed(100 + i)  # the same views for both
        got = fast_trainer.train_step(batch)
        torch.manual_seed(100 + i)
        with monkeypatch.context() as patch:
            patch.setattr("recsys.models.contrastive_regularizer", regularizer_by_definition)
            expected = slow_trainer.train_step_reference(batch)
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)
    for (name, p), q in zip(slow.named_parameters(), fast.parameters()):
        if name.endswith("key.bias"):
            # Its gradient is 0 in exact arithmetic (a key bias adds the same q.b to every
            # score of a row, and softmax ignores that); Adam turns each forward's float noise
            # (~1e-9) into steps of about +-lr, so the two paths need not agree on it.
            continue
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    for name in ("optimizer", "augmenter_optimizer"):
        a = fast_trainer.optimizers()[name].state_dict()["state"]
        b = slow_trainer.optimizers()[name].state_dict()["state"]
        for k in b:
            torch.testing.assert_close(a[k]["exp_avg"], b[k]["exp_avg"], rtol=1e-4, atol=1e-6)
