"""Independent float64 references, written once, for tests that mean "checked against something else".

Nothing here calls gradviz's own derivative code: where a test compares gradviz's Hessian, Gauss-Newton
matrix or per-sample gradients with "the truth", the truth comes from this module, which uses other
channels of torch (`torch.autograd.functional`, plain `.backward()` loops) or no autodiff at all
(central finite differences). Each reference is itself checked against finite differences in
`tests/test_reference.py`.

Not `torch.func.hessian`: it is forward-over-reverse through `jacfwd`, and for a small model with an
`nn.TransformerEncoderLayer` (torch 2.13, CPU, float64, math attention) it returned a Hessian 20 % off
while reverse-over-reverse and finite differences agreed to 2e-16 / 1e-9.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

F64 = torch.float64


def params_of(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    "Names and detached float64 copies of the trainable parameters, in `named_parameters` order."
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p.detach().to(F64) for _, p in named]


def flat_loss(model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor) -> tuple[Callable, torch.Tensor]:
    "θ ↦ loss_fn(model_θ(X), y) in float64 over the flat trainable parameters, and θ at the model's values."
    names, ps = params_of(model)
    shapes, sizes = [p.shape for p in ps], [p.numel() for p in ps]
    model64 = copy.deepcopy(model).to(F64)  # the caller's model is left as it was
    X64 = X.to(F64) if X.is_floating_point() else X
    y64 = y.to(F64) if y.is_floating_point() else y

    def f(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, sizes)
        out = functional_call(model64, {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}, (X64,))
        return loss_fn(out, y64)

    return f, torch.cat([p.flatten() for p in ps])


def dense_hessian(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> torch.Tensor:
    "The Hessian of a scalar function by reverse-over-reverse (`torch.autograd.functional.hessian`)."
    return torch.autograd.functional.hessian(f, theta.detach().to(F64))


def model_hessian(model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    "The Hessian of the loss in the model's flat trainable parameters, in float64, reverse-over-reverse."
    f, theta = flat_loss(model, loss_fn, X, y)
    return dense_hessian(f, theta)


def gauss_newton(model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    "G = Jᵀ (∂²ℓ/∂z²) J from the linearised model: J by reverse-mode Jacobian, ∂²ℓ/∂z² by reverse-over-reverse."
    names, ps = params_of(model)
    shapes, sizes = [p.shape for p in ps], [p.numel() for p in ps]
    model64 = copy.deepcopy(model).to(F64)
    X64 = X.to(F64) if X.is_floating_point() else X
    y64 = y.to(F64) if y.is_floating_point() else y

    def outputs(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, sizes)
        return functional_call(model64, {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}, (X64,))

    theta = torch.cat([p.flatten() for p in ps])
    z = outputs(theta).detach()
    J = torch.autograd.functional.jacobian(outputs, theta).reshape(z.numel(), -1)
    H_out = torch.autograd.functional.hessian(lambda zz: loss_fn(zz.view_as(z), y64), z.flatten())
    return J.T @ H_out @ J


def per_sample_grads_loop(model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    "Per-sample gradients (n, p) by one `.backward()` per sample on a batch of one, in float64."
    model64 = copy.deepcopy(model).to(F64)
    params = [p for p in model64.parameters() if p.requires_grad]
    rows = []
    for i in range(len(X)):
        xi = X[i:i + 1].to(F64) if X.is_floating_point() else X[i:i + 1]
        yi = y[i:i + 1].to(F64) if y.is_floating_point() else y[i:i + 1]
        grads = torch.autograd.grad(loss_fn(model64(xi), yi), params, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, params)]))
    return torch.stack(rows)


def fd_gradient(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    "Central finite differences of a scalar function: no autodiff at all."
    theta = theta.detach().to(F64)
    basis = torch.eye(theta.numel(), dtype=F64)
    with torch.no_grad():
        return torch.stack([(f(theta + eps * e) - f(theta - eps * e)) / (2 * eps) for e in basis])


def fd_hessian(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    "Central second differences of a scalar function, symmetrised: no autodiff at all."
    theta = theta.detach().to(F64)
    n, basis = theta.numel(), torch.eye(theta.numel(), dtype=F64)
    H = torch.empty(n, n, dtype=F64)
    with torch.no_grad():
        for i in range(n):
            for j in range(i, n):
                ei, ej = eps * basis[i], eps * basis[j]
                H[i, j] = H[j, i] = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej)
                                     + f(theta - ei - ej)) / (4 * eps * eps)
    return H


def require_ref(module: str):
    "Import a peer library used as a test-only reference: skip when absent, fail when `GRADVIZ_REQUIRE_REFS=1` (CI)."
    import importlib
    import os

    import pytest
    if os.environ.get("GRADVIZ_REQUIRE_REFS", "") == "1": return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"peer library {module} is not installed (pip install -e '.[ref]')")
