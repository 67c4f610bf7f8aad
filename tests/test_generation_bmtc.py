"""Reference tests for gradviz.generation.bmtc: the ε-ball after every step, I-FGSM/MI-FGSM against torchattacks'
BIM/MIFGSM (test-only peer), the reductions of BMTC to I-FGSM, the temporal-consistency gradient against central
differences (float64, smooth surrogate), REINFORCE against the exact policy gradient and on a known bandit, and the
chapter's findings at small settings."""
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from gradviz.core import as_generator
from gradviz.data import tiny_clips, tiny_cnn, video_cnn
from gradviz.generation.bmtc import (KINDS, VARIANTS, Ablation, Attack, BackgroundPolicy, MixupReward, PolicyRun,
                                     VideoZoo, _ascent_direction, background_bank, bmtc_attack, bmtc_figure,
                                     compute_ablation, explore_bmtc, frame_cosines, ifgsm, kind_summary, mifgsm,
                                     mixup, plot_frame_cosine, plot_frame_strip, plot_policy, plot_transfer_bars,
                                     run_variant, temporal_consistency, train_policy, transfer_eps_figure,
                                     transfer_rates, video_zoo)
from reference import require_ref

F64, EPS = torch.float64, 16 / 255


@pytest.fixture(scope="module")
def toy():
    "An untrained 3-D CNN and eight 8 × 8 clips with their background bank."
    clips = tiny_clips(8, size=8, seed=1, device="cpu")
    return video_cnn("3d", width=4, seed=0, device="cpu").eval(), clips, background_bank(clips.x, clips.y)


@pytest.fixture(scope="module")
def small_zoo():
    "A trained surrogate and one target of each kind on 12 × 12 clips (the chapter's recipe, fewer clips)."
    return video_zoo(n_train=800, n_test=96, size=16, steps=50, target_seeds=(1,), seed=0, device="cpu")


# ---------------------------------------------------------------- the pieces
def test_background_bank_is_the_temporal_median_of_the_first_clip_of_each_class():
    clips = tiny_clips(12, size=16, seed=3, device="cpu")
    bank = background_bank(clips.x, clips.y)
    for c in range(4):
        i = int((clips.y == c).nonzero()[0])
        torch.testing.assert_close(bank[c], clips.x[i].median(dim=1).values, rtol=0, atol=0)
    assert float(bank.amax()) < float(clips.x.amax()) - 0.2  # the blob is gone


def test_mixup_projects_and_reduces_to_the_identity():
    clips = tiny_clips(6, size=8, seed=2, device="cpu")
    bg = torch.rand(6, 1, 8, 8, generator=as_generator(0))
    for gamma in (0.0, 0.5, 0.8):
        m = mixup(clips.x, bg, gamma, EPS)
        want = torch.minimum(torch.maximum(gamma * clips.x + (1 - gamma) * bg[:, :, None], clips.x - EPS),
                             clips.x + EPS).clamp(0, 1)
        torch.testing.assert_close(m, want, rtol=0, atol=0)
        assert (m - clips.x).abs().max() <= EPS + 1e-7
    assert torch.equal(mixup(clips.x, bg, 1.0, EPS), clips.x)
    assert torch.allclose(mixup(clips.x, bg[0], 0.0, 1.0), bg[0].expand(6, 1, 8, 8)[:, :, None].expand_as(clips.x))


def test_temporal_consistency_known_cases_and_scale_invariance():
    g = torch.randn(3, 2, 5, 4, 4, generator=as_generator(0), dtype=F64)
    cos = frame_cosines(g)
    flat = g.transpose(1, 2).flatten(2)
    ref = torch.stack([torch.stack([flat[i, t] @ flat[i, t + 1] / (flat[i, t].norm() * flat[i, t + 1].norm())
                                    for t in range(4)]) for i in range(3)])
    torch.testing.assert_close(cos, ref, rtol=0, atol=1e-14)
    torch.testing.assert_close(temporal_consistency(g), (1 - ref).sum(1), rtol=0, atol=1e-13)
    scale = torch.tensor([1.0, 3.0, 0.1, 7.0, 2.0], dtype=F64)[:, None, None]
    torch.testing.assert_close(temporal_consistency(g * scale), temporal_consistency(g), rtol=0, atol=1e-13)
    same = g[:, :, :1].expand_as(g)
    assert temporal_consistency(same).abs().max() < 1e-12


# ---------------------------------------------------------------- the attacks
@pytest.mark.parametrize("variant", ["ifgsm", "mifgsm", "mixup", "mixup+tc"])
def test_every_iterate_stays_in_the_ball_and_in_the_unit_box(toy, variant):
    net, clips, bank = toy
    for k in range(1, 6):
        if variant == "ifgsm": a = ifgsm(net, clips.x, clips.y, EPS, k, step_size=EPS / 2)
        elif variant == "mifgsm": a = mifgsm(net, clips.x, clips.y, EPS, k, step_size=EPS / 2)
        else: a = bmtc_attack(net, clips.x, clips.y, EPS, k, 0.8, None, 1.0 if "tc" in variant else 0.0, bank=bank,
                              step_size=EPS / 2)
        for it in (a.start, a.x_adv):
            assert (it - clips.x).abs().max() <= EPS + 1e-7 and it.min() >= 0 and it.max() <= 1


def test_gamma_one_and_no_tc_is_ifgsm_bit_for_bit(toy):
    net, clips, bank = toy
    ref = ifgsm(net, clips.x, clips.y, EPS, 6)
    assert torch.equal(bmtc_attack(net, clips.x, clips.y, EPS, 6, 1.0, None, 0.0, bank=bank).x_adv, ref.x_adv)
    assert torch.equal(bmtc_attack(net, clips.x, clips.y, EPS, 6, 0.8, None, 0.0).x_adv, ref.x_adv)  # no bank
    # a fixed background and no TC: I-FGSM from the mixed start, projected around the clean clip
    mixed = bmtc_attack(net, clips.x, clips.y, EPS, 3, 0.8, None, 0.0, bank=bank, seed=4)
    x = mixed.start
    for _ in range(3):
        leaf = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(net(leaf), clips.y), leaf)
        x = torch.clamp(x + EPS / 3 * g.sign(), clips.x - EPS, clips.x + EPS).clamp(0, 1)
    assert torch.equal(mixed.x_adv, x)


def test_tc_gradient_reaches_the_input_and_matches_central_differences():
    net = video_cnn("3d", width=4, activation="tanh", seed=5, dtype=F64, device="cpu").eval()
    clips = tiny_clips(3, size=8, seed=6, device="cpu", dtype=F64)

    def tc(x):
        x = x.detach().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(net(x), clips.y), x, create_graph=True)
        return temporal_consistency(g).mean(), x
    val, leaf = tc(clips.x)
    grad = torch.autograd.grad(val, leaf)[0]
    assert grad.abs().max() > 1e-6
    for i in range(5):
        v = torch.randn(clips.x.shape, generator=as_generator(10 + i), dtype=F64)
        fd = (tc(clips.x + 1e-5 * v)[0].detach() - tc(clips.x - 1e-5 * v)[0].detach()) / 2e-5
        assert abs(float(fd - (grad * v).sum())) <= 1e-3 * abs(float(fd))
    leaf = clips.x.clone().requires_grad_(True)
    d_ce = torch.autograd.grad(F.cross_entropy(net(leaf), clips.y), leaf)[0]
    torch.testing.assert_close(_ascent_direction(net, clips.x, clips.y, 0.3)[0], d_ce - 0.3 * grad, rtol=1e-10,
                               atol=1e-14)


def test_the_frame_cosine_rises_with_the_tc_weight(small_zoo):
    x, y = small_zoo.test.x[:32], small_zoo.test.y[:32]
    cos = [float(bmtc_attack(small_zoo.surrogate, x, y, EPS, 10, tc_weight=w).frame_cosine[-1].mean())
           for w in (0.0, 1.0, 10.0)]
    assert cos[0] < cos[1] < cos[2]


def _frame_model():
    net = tiny_cnn(in_channels=1, num_classes=4, image_size=8, width=6, seed=2, device="cpu").eval()
    x = torch.rand(16, 1, 8, 8, generator=as_generator(1))
    return net, x, torch.arange(16) % 4


@pytest.mark.ref
def test_ifgsm_equals_torchattacks_bim_bit_for_bit():
    torchattacks = require_ref("torchattacks")
    net, x, y = _frame_model()
    ours = ifgsm(net, x, y, 8 / 255, 7, step_size=2 / 255).x_adv
    peer = torchattacks.BIM(net, eps=8 / 255, alpha=2 / 255, steps=7)(x, y)
    assert torch.equal(ours, peer)


@pytest.mark.ref
def test_mifgsm_equals_torchattacks_mifgsm_on_a_frame_model():
    torchattacks = require_ref("torchattacks")
    net, x, y = _frame_model()
    ours = mifgsm(net, x, y, 8 / 255, 7, step_size=2 / 255, decay=1.0).x_adv
    peer = torchattacks.MIFGSM(net, eps=8 / 255, alpha=2 / 255, steps=7, decay=1.0)(x, y)
    torch.testing.assert_close(ours, peer, rtol=0, atol=1e-6)  # the two projections round differently


# ---------------------------------------------------------------- the policy
def test_reinforce_puts_most_mass_on_the_best_arm_of_a_bandit():
    means, g = torch.tensor([0.2, 0.1, 0.6, 0.4]), as_generator(7)
    reward = lambda x, y, a: means[a] + 0.2 * torch.randn(len(a), generator=g)
    policy, blank = BackgroundPolicy(4, lr=0.5), torch.zeros(16, 1, 2, 8, 8)
    for step in range(300): policy.reinforce_step(blank, torch.zeros(16, dtype=torch.long), reward, seed=step)
    assert float(policy.probs(blank[:1])[0, 2]) > 0.9


def test_reinforce_step_follows_the_exact_policy_gradient():
    "Unnormalised, the leave-one-out step is unbiased: its mean is lr·∇_b E_π[R] = lr·π ⊙ (r − π·r) (to MC error)."
    r = torch.tensor([1.0, 0.0, 0.5, 2.0])
    policy = BackgroundPolicy(4, lr=1.0, normalize=False)
    policy.bias += torch.tensor([0.3, -0.2, 0.0, 0.1])
    pi, before = torch.softmax(policy.bias, 0), policy.bias.clone()
    n = 200_000
    step = policy.reinforce_step(torch.zeros(n, 1, 2, 4, 4), torch.zeros(n, dtype=torch.long), lambda x, y, a: r[a],
                                 seed=0)
    exact = pi * (r - pi @ r)
    loo = (step.rewards.sum() - step.rewards) / (n - 1)
    per_sample = (step.rewards - loo)[:, None] * (F.one_hot(step.actions, 4) - pi)
    se = per_sample.std(0) / n ** 0.5
    assert ((policy.bias - before - exact).abs() < 4 * se + 1e-6).all()


def test_mixup_reward_sign_and_query_count(toy):
    net, clips, bank = toy
    reward = MixupReward(net, bank, reward_models=[net, net], transfer_every=2)
    a = torch.tensor([1, 2, 3, 0, 1, 2, 3, 0])
    mixed = mixup(clips.x, bank[a], 0.8, EPS)
    with torch.no_grad():
        rise = F.cross_entropy(net(mixed), clips.y, reduction="none") - F.cross_entropy(net(clips.x), clips.y,
                                                                                        reduction="none")
        z = net(mixed)
        margin = z.scatter(1, clips.y[:, None], -1e9).amax(1) - z.gather(1, clips.y[:, None])[:, 0]
    torch.testing.assert_close(reward(clips.x, clips.y, a), rise + 0.2 * margin)  # call 0 queries the models
    torch.testing.assert_close(reward(clips.x, clips.y, a), rise)  # call 1 does not
    assert reward.queries == 8 * 2
    run = train_policy(BackgroundPolicy(4), clips.x, clips.y, reward, steps=4, batch_size=4)
    assert isinstance(run, PolicyRun) and run.queries == 2 * 4 * 2


def test_transfer_rates_count_only_clips_the_model_gets_right(toy):
    net, clips, _ = toy
    att = ifgsm(net, clips.x, clips.y, EPS, 3)
    with torch.no_grad(): ok, bad = net(clips.x).argmax(1) == clips.y, net(att.x_adv).argmax(1) != clips.y
    got = transfer_rates({"a": net}, att.x_adv, clips.y, clips.x)["a"]
    assert got == pytest.approx(float((ok & bad).sum()) / max(1, int(ok.sum())))
    assert transfer_rates({"a": net}, att.x_adv, clips.y)["a"] == pytest.approx(float(bad.double().mean()))


# ---------------------------------------------------------------- the findings, small
def test_findings_at_small_settings(small_zoo):
    zoo = small_zoo
    assert zoo.accuracy["surrogate"] > 0.8 and not set(zoo.targets) & set(zoo.reward_models)
    bank = background_bank(zoo.held_out.x, zoo.held_out.y)
    run = train_policy(BackgroundPolicy(4), zoo.train.x[:400], zoo.train.y[:400],
                       MixupReward(zoo.surrogate, bank, reward_models=list(zoo.reward_models.values())), steps=40,
                       batch_size=16)
    x, y = zoo.test.x[32:], zoo.test.y[32:]
    ab = compute_ablation(zoo, x, y, run.policy, ("ifgsm", "mixup", "rl", "bmtc"), tc_weight=1.0)
    assert min(ab.white_box.values()) >= 0.9  # white-box floor
    assert float(ab.frame_cosine["bmtc"][-1]) > float(ab.frame_cosine["rl"][-1])  # TC aligns the frames
    mean = lambda v: sum(r for (u, _), r in ab.rates.items() if u == v) / len(zoo.targets)
    assert mean("bmtc") < mean("ifgsm")  # and does not buy transfer here
    s = kind_summary(ab)
    assert s.mean["ifgsm", "3d"] > max(s.mean["ifgsm", "2d_temporal"], s.mean["ifgsm", "2plus1d"])


# ---------------------------------------------------------------- figures and explorer
def test_figures(small_zoo, toy):
    net, clips, bank = toy
    zoo = small_zoo
    x, y = zoo.test.x[:16], zoo.test.y[:16]
    policy = BackgroundPolicy(4)
    ab = compute_ablation(zoo, x, y, policy, ("ifgsm", "bmtc"), steps=2)
    assert isinstance(plot_transfer_bars(ab, title="t"), Figure) and isinstance(plot_frame_cosine(ab), Figure)
    run = train_policy(policy, clips.x, clips.y, MixupReward(net, bank), steps=12, batch_size=4)
    assert isinstance(plot_policy(run), Figure)
    assert isinstance(plot_frame_strip(x, ab.attacks["bmtc"], index=1, frames=(0, 5)), Figure)
    assert isinstance(plot_frame_strip(x, ab.attacks["bmtc"]), Figure)
    fig = transfer_eps_figure({EPS: ab, 2 * EPS: ab}, active=1)
    assert isinstance(fig, go.Figure) and len(fig.layout.sliders[0].steps) == 2 and len(fig.data) == 4


def test_explorer_reuses_the_zoo_and_caches(small_zoo):
    cache = {"zoos": {0.7: {"zoo": small_zoo}}}
    ex = explore_bmtc(cache)
    fig = ex.update(steps=2)
    assert [t.name for t in fig.data] == ["I-FGSM", "I-FGSM", "chosen", "chosen"]
    assert ex.update(steps=2) is fig and len(cache["attacks"]) == 1
    narrow = bmtc_figure(steps=2, target="3d", cache=cache)
    assert list(narrow.data[0].x) == ["surrogate", "3d/1"] and len(cache["attacks"]) == 1


# ---------------------------------------------------------------- bad input
from probe import INF, NAN, SIZES, UNKNOWN, Probe  # noqa: E402

_CLIPS = tiny_clips(8, size=8, seed=0, device="cpu")
_X, _Y = _CLIPS.x, _CLIPS.y
_NET = video_cnn("3d", width=2, seed=0, device="cpu").eval()
_BANK = background_bank(_X, _Y)
_G = torch.randn(2, 1, 4, 3, 3)
_ZOO = video_zoo(n_train=16, n_test=8, size=8, steps=1, target_seeds=(1,), device="cpu")
_AB = compute_ablation(_ZOO, _X, _Y, BackgroundPolicy(4), ("ifgsm",), steps=1)
_RUN = train_policy(BackgroundPolicy(4), _X, _Y, lambda x, y, a: a.float(), steps=2, batch_size=2)
_BAD_X = [_X[0, 0, 0, 0], _X.long(), _X + 2, torch.full_like(_X, NAN), "x"]
_BAD_Y = [_Y[:-1], _Y.double(), -_Y - 1, "y"]
_ATTACK = dict(eps=[0.0, -0.1, 1.5, NAN, "e"], steps=SIZES, step_size=[0.0, -1.0, NAN])

PROBES = [
    Probe(background_bank, dict(clips=_X, labels=_Y), dict(clips=_BAD_X, labels=_BAD_Y, num_classes=SIZES)),
    Probe(mixup, dict(x=_X, bg=_BANK[_Y]), dict(x=_BAD_X, bg=[_BANK, _BANK[:, :, :4], _BANK[_Y] + 2, "b"],
                                                 gamma=[-0.1, 1.5, NAN], eps=[0.0, -1.0, INF])),
    Probe(frame_cosines, dict(g=_G), dict(g=[_G[0], _G[:, :, :1], _G.long(), torch.full_like(_G, NAN), "g"])),
    Probe(temporal_consistency, dict(g=_G), dict(g=[_G[0], _G[:, :, :1], "g"])),
    Probe(ifgsm, dict(model=_NET, x=_X, y=_Y, steps=1),
          dict(model=["m"], x=_BAD_X, y=_BAD_Y, device=[UNKNOWN, 3], progress=["bar"], **_ATTACK)),
    Probe(mifgsm, dict(model=_NET, x=_X, y=_Y, steps=1),
          dict(model=["m"], x=_BAD_X, y=_BAD_Y, decay=[-1.0, NAN], **_ATTACK)),
    Probe(bmtc_attack, dict(surrogate=_NET, x=_X, y=_Y, steps=1, bank=_BANK),
          dict(surrogate=[None], x=_BAD_X + [_X[:, :, 0]], y=_BAD_Y, gamma=[-0.1, 1.5, NAN], tc_weight=[-1.0, INF],
               policy=["p"], bank=[_BANK[0], _BANK + 2, "b"], seed=[-1, 0.5], **_ATTACK)),
    Probe(BackgroundPolicy, dict(num_backgrounds=4),
          dict(num_backgrounds=SIZES, channels=SIZES, pool=SIZES, lr=[0.0, NAN],
               normalize=["yes"], device=[UNKNOWN])),
    Probe(MixupReward, dict(surrogate=_NET, bank=_BANK),
          dict(surrogate=["m"], bank=[_BANK[0], _BANK + 2], gamma=[1.5, NAN], eps=[0.0, 2.0],
               reward_models=[["m"]], transfer_weight=[-1.0, NAN], transfer_every=SIZES)),
    Probe(train_policy, dict(policy=BackgroundPolicy(4), x=_X, y=_Y, reward=lambda x, y, a: a.float(), steps=1,
                             batch_size=2),
          dict(policy=["p"], x=_BAD_X, y=_BAD_Y, steps=SIZES, batch_size=SIZES + [100], seed=[-1, 0.5],
               progress=["bar"])),
    Probe(transfer_rates, dict(models={"a": _NET}, x_adv=_X, y=_Y),
          dict(models=[_NET, {"a": "m"}], x_adv=_BAD_X, y=_BAD_Y, x=[_X[:2], "x"])),
    Probe(video_zoo, dict(n_train=16, n_test=8, size=8, steps=1, target_seeds=(1,), device="cpu"),
          dict(n_train=SIZES, n_test=SIZES, frames=[1, 0], size=[4, -1], background_correlation=[-0.1, 1.5, NAN],
               target_seeds=[(), (0,), (-1,)], reward_seeds=[(1,), ()], steps=SIZES, batch_size=SIZES,
               lr=[0.0, NAN], width=SIZES, seed=[-1, 0.5], device=[UNKNOWN], progress=["bar"])),
    Probe(run_variant, dict(variant="ifgsm", zoo=_ZOO, x=_X, y=_Y, steps=1),
          dict(variant=[UNKNOWN], zoo=["z"], x=_BAD_X, eps=[0.0, NAN], steps=SIZES)),
    Probe(compute_ablation, dict(zoo=_ZOO, x=_X, y=_Y, variants=("ifgsm",), steps=1),
          dict(variants=[(), "ifgsm", (UNKNOWN,)], zoo=["z"], targets=["t"], eps=[0.0], progress=["bar"])),
    Probe(kind_summary, dict(ablation=_AB), dict(ablation=["a", None])),
    Probe(plot_transfer_bars, dict(ablation=_AB), dict(ablation=["a", None])),
    Probe(plot_frame_cosine, dict(ablation=_AB), dict(ablation=["a", None])),
    Probe(plot_policy, dict(run=_RUN), dict(run=["r", None])),
    Probe(plot_frame_strip, dict(x=_X, attack=_AB.attacks["ifgsm"]),
          dict(x=[_X[:2], "x"], attack=["a"], index=[-1, 99], frames=[(9,), (-1,)])),
    Probe(transfer_eps_figure, dict(sweep={EPS: _AB}), dict(sweep=[{}, "s", {EPS: "a"}], active=[-1, 5])),
    Probe(bmtc_figure, dict(cache={"zoos": {0.7: {"zoo": _ZOO}}}, steps=1),
          dict(eps255=[0.0, -1.0, 300.0, NAN], steps=SIZES, gamma=[-0.1, 1.5], tc_weight=[-1.0], shortcut=[1.5, NAN],
               mixup=["yes"], rl=[1], tc=["no"], target=[UNKNOWN], cache=["c", 3])),
    Probe(explore_bmtc, dict(cache=None), dict(cache=["c", 3])),
]
UNPROBED = {}
