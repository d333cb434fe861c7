"""The plots of duplex's HTML reports (`inv loadtest`'s latency curves, `inv eval`'s histograms):
inline SVG, no script, every label escaped. Pure."""

from __future__ import annotations

import html

W, H, PAD = 560, 260, 48


def frame(label: str, xlabel: str, ylabel: str, top: float, tick: str) -> list[str]:
    """An SVG plot's opening tag, axes, axis labels and y ticks (at quarters of `top`, formatted
    with `tick`): the x ticks and the data are the caller's; the caller closes the </svg>."""
    out = [f'<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(label)}">',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#888"/>',
           f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#888"/>',
           f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">{html.escape(xlabel)}</text>',
           f'<text x="12" y="{PAD - 12}">{html.escape(ylabel)}</text>']
    for frac in (0.25, 0.5, 0.75, 1.0):
        y = H - PAD - frac * (H - 2 * PAD)
        out.append(f'<text x="{PAD - 6}" y="{y + 4:.0f}" text-anchor="end">{tick.format(top * frac)}</text>')
    return out
