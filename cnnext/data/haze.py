"""The atmospheric scattering model of haze (McCartney 1976; as used by He et al. 2009 and AOD-Net):

    I = J t + A (1 - t),    t = exp(-beta d)

for the clear scene J, the transmission t, the global airlight A, the scattering coefficient beta and the
scene depth d. Arrays are float in [0, 1], channels first.
"""
import numpy as np
from PIL import Image


def add_haze(clear, transmission, airlight):
    """The hazy image I = J t + A (1 - t) of `clear` J ([3, H, W]); `transmission` t in [0, 1] broadcasts
    against J ([H, W] or [1, H, W]), `airlight` A is a scalar or one value per channel ([3, 1, 1])."""
    transmission = np.asarray(transmission)
    if transmission.min() < 0 or transmission.max() > 1:
        raise ValueError(f"transmission must lie in [0, 1], got values in [{transmission.min()}, "
                         f"{transmission.max()}]")
    return clear * transmission + np.asarray(airlight) * (1 - transmission)


def transmission_from_depth(depth, beta):
    """t = exp(-beta d) for a depth map d >= 0 and scattering coefficient beta >= 0."""
    return np.exp(-beta * np.asarray(depth))


def depth_like_map(size, rng):
    """A smooth [size, size] map in [0, 1] standing in for scene depth: a tilted plane (farther towards the top
    or one side, as in an outdoor photo) plus low-frequency noise."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    plane = rng.uniform(0.4, 1.0) * (1 - y) + rng.uniform(-0.3, 0.3) * x
    noise = np.asarray(Image.fromarray(rng.uniform(0, 1, (4, 4)).astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BICUBIC))
    depth = plane + rng.uniform(0, 0.4) * noise
    return (depth - depth.min()) / (np.ptp(depth) + 1e-6)


def random_haze(clear, rng, beta=(0.4, 1.6), airlight=(0.7, 1.0)):
    """`clear` ([3, H, W]) hazed with a depth-like map, a random beta and a random, nearly grey airlight."""
    depth = depth_like_map(clear.shape[-1], rng)
    light = rng.uniform(*airlight) + rng.uniform(-0.03, 0.03, (3, 1, 1))
    return np.clip(add_haze(clear, transmission_from_depth(depth, rng.uniform(*beta)), np.clip(light, 0, 1)), 0, 1)
