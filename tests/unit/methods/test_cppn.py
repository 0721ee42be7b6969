"""The fused composite activation of the CPPN parameterization is the written-out formula, to the bit."""

from __future__ import annotations

import torch

from trojanbench.methods.synthesis._cppn import CompositeActivation, CPPNImages


def written_out(h: torch.Tensor) -> torch.Tensor:
    """Mordvintsev et al.'s composite activation as plain tensor operations (autograd differentiates it)."""
    angle = torch.atan(h)
    return torch.cat([angle / 0.67, angle * angle / 0.6], dim=1)


def test_values_and_gradients_are_bit_identical_to_the_written_out_formula():
    """Feature visualization is chaotic in the last bit, so the fused version must round exactly alike."""
    h = (3 * torch.randn(4, 16, 300, generator=torch.Generator().manual_seed(0))).requires_grad_()
    grad = torch.randn(4, 32, 300, generator=torch.Generator().manual_seed(1))
    fused, reference = CompositeActivation.apply(h), written_out(h)
    assert torch.equal(fused, reference)
    assert torch.equal(*(torch.autograd.grad(out, h, grad)[0] for out in (fused, reference)))


def test_gradient_is_the_derivative():
    h = torch.randn(2, 4, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(CompositeActivation.apply, (h,))


def test_images_start_grey_and_stay_in_the_unit_interval():
    cppn = CPPNImages(3, 8, torch.Generator().manual_seed(0), n_layers=2, n_hidden=4)
    assert torch.equal(cppn(), torch.full((3, 3, 8, 8), 0.5))
    with torch.no_grad():
        cppn.out_weight.normal_(generator=torch.Generator().manual_seed(1))
    images = cppn()
    assert ((images > 0) & (images < 1)).all() and images.flatten(1).std(1).min() > 0
