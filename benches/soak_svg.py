#!/usr/bin/env python3
"""Draws soak.sh's results as one SVG: RSS (MiB) and open file descriptors of the server
every 10 s, and first-delta and whole-turn p99 (ms) per minute, each on its own panel.
Usage: soak_svg.py SAMPLES.tsv RUNS_DIR MINUTES > soak.svg (standard library only)."""
import json
import os
import sys


def load(samples_path, runs_dir, minutes):
    samples = []
    with open(samples_path) as f:
        next(f)
        for line in f:
            secs, rss, fds = line.split("\t")[:3]
            samples.append((int(secs) / 60.0, int(rss) / 1024.0, int(fds)))
    minutes_rows = []
    for m in range(1, minutes + 1):
        path = os.path.join(runs_dir, f"minute-{m}.json")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            run = json.load(open(path))
            minutes_rows.append((m, run["ttft_ms"]["p99"], run["turn_ms"]["p99"]))
    return samples, minutes_rows


def panel(x0, y0, w, h, title, series, x_max, unit):
    """series: list of (label, colour, [(x, y)])"""
    ys = [y for _, _, pts in series for _, y in pts] or [1]
    y_max = max(ys) * 1.15 or 1
    out = [f'<g><rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
           f'<text x="{x0}" y="{y0 - 8}" font-size="14" font-weight="bold">{title}</text>']
    for i in range(5):
        v = y_max * i / 4
        y = y0 + h - h * i / 4
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{v:.0f}{unit}</text>')
    for t in range(0, int(x_max) + 1, max(1, int(x_max) // 10 or 1)):
        x = x0 + w * t / x_max
        out.append(f'<text x="{x:.1f}" y="{y0 + h + 14}" font-size="11" text-anchor="middle">{t}</text>')
    for k, (label, colour, pts) in enumerate(series):
        if not pts:
            continue
        path = " ".join(f"{x0 + w * x / x_max:.1f},{y0 + h - h * y / y_max:.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(f'<text x="{x0 + w - 4}" y="{y0 + 16 + 14 * k}" font-size="12" fill="{colour}" text-anchor="end">{label}</text>')
    out.append("</g>")
    return "\n".join(out)


def main():
    samples, rows = load(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    x_max = max([s[0] for s in samples] + [r[0] for r in rows] + [1])
    width, ph = 900, 180
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{3 * (ph + 70) + 30}" font-family="sans-serif">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="70" y="20" font-size="12">minutes since the start →</text>']
    parts.append(panel(70, 50, width - 100, ph, "server RSS (MiB), every 10 s",
                       [("RSS", "#1f77b4", [(s[0], s[1]) for s in samples])], x_max, ""))
    parts.append(panel(70, 50 + ph + 70, width - 100, ph, "server open file descriptors, every 10 s",
                       [("fds", "#2ca02c", [(s[0], s[2]) for s in samples])], x_max, ""))
    parts.append(panel(70, 50 + 2 * (ph + 70), width - 100, ph, "p99 per minute (ms)",
                       [("first delta p99", "#d62728", [(r[0], r[1]) for r in rows]),
                        ("whole turn p99", "#9467bd", [(r[0], r[2]) for r in rows])], x_max, ""))
    parts.append("</svg>")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
