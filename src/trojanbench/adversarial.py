"""L∞ projected gradient ascent (PGD, Madry et al. 2018): the one attack used to train the robust observer and to
test every judge's robustness."""

from __future__ import annotations

from collections.abc import Callable

import torch


def linf_pgd(images: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor], epsilon: float, steps: int, *,
             step_size: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` ``[n, 3, H, W]`` in ``[0, 1]`` moved within L∞ ``epsilon`` to raise ``objective(moved)`` (a scalar,
    e.g. a summed loss) by ``steps`` signed-gradient steps of ``step_size`` (default ``2.5 * epsilon / steps``).
    With a ``generator`` the start is a uniform random point of the ball (as in adversarial training); without one it
    is the images themselves. Returns a detached tensor; the images' gradients are not touched."""
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    images = images.detach()
    moved = images.clone()
    if generator is not None:
        noise = torch.rand(images.shape, generator=generator) * 2 - 1
        moved = (images + epsilon * noise).clamp(0, 1)
    for _ in range(steps):
        with torch.enable_grad():
            moved.requires_grad_(True)
            (gradient,) = torch.autograd.grad(objective(moved), moved)
        with torch.no_grad():
            moved = (moved + step_size * gradient.sign()).clamp(images - epsilon, images + epsilon).clamp(0, 1)
    return moved.detach()
