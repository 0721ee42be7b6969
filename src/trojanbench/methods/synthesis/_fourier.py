"""The decorrelated Fourier image parameterization of Olah et al. (2017, "Feature Visualization"):
a random spectrum scaled by ``1 / frequency ** decay_power`` (so all frequencies learn at a similar
rate), orthonormal inverse FFT divided by 4, colour decorrelation (the square root of the pixel colour
covariance, measured on the auditor's clean images as Olah et al. measured it on ImageNet), then a sigmoid into
``[0, 1]``.

The scaling is Lucid's (``scale = sqrt(h w) / f`` before TensorFlow's inverse FFT, which divides by ``h w``; here the
orthonormal inverse FFT divides by ``sqrt(h w)``, so the same pixels come from ``1 / f``). An earlier version also
multiplied by the side, which made every step ``size`` times larger than Lucid's: saturated, high-frequency images.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...params import Interval

FOURIER_CONSTRAINTS = {"decay_power": Interval(float, 0, None)}
INIT_STD = 0.01
"""Standard deviation of the initial spectrum (Lucid's ``sd``)."""


def colour_sqrt(images: torch.Tensor) -> torch.Tensor:
    """``[3, 3]`` square root (``U sqrt(S)``) of the colour covariance of ``images``, columns scaled so
    the largest has unit norm."""
    pixels = images.transpose(0, 1).reshape(3, -1).double()
    u, s, _ = torch.linalg.svd(torch.cov(pixels))
    root = u * s.clamp(min=0).sqrt()
    return (root / root.norm(dim=0).max().clamp(min=1e-12)).float()


class FourierImages(nn.Module):
    """``n`` images drawn from independent random spectra; ``forward()`` renders ``[n, 3, size, size]``."""

    def __init__(self, n: int, size: int, colour: torch.Tensor, generator: torch.Generator,
                 decay_power: float = 1.0) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("colour", colour)
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        frequency = (fx ** 2 + fy ** 2).sqrt().clamp(min=1 / size)
        self.register_buffer("scale", 1 / frequency ** decay_power)
        shape = (n, 3, size, size // 2 + 1, 2)
        self.spectrum = nn.Parameter(INIT_STD * torch.randn(shape, generator=generator))

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / 4
        return torch.sigmoid(torch.einsum("ij,njhw->nihw", self.colour, decorrelated))
