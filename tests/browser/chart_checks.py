"""What every chart page owes its reader: Plotly's toolbar (the modebar, top right of each plot)
never lies over a chart's title, at any width (docs/architecture.md, "Figures")."""

from __future__ import annotations

from typing import Any

OVERLAPS = """() => {
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5
                         && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
  const found = [];
  document.querySelectorAll('.js-plotly-plot').forEach((plot) => {
    const bar = plot.querySelector('.modebar');
    if (!bar) { return; }
    const box = bar.getBoundingClientRect();
    const titles = Array.from(plot.querySelectorAll('.gtitle'));
    const heading = plot.closest('.chart-box') && plot.closest('.chart-box').querySelector('.chart-title');
    if (heading) { titles.push(heading); }
    titles.forEach((t) => {
      const text = t.textContent.trim();
      if (text && overlap(box, t.getBoundingClientRect())) { found.push(text); }
    });
  });
  return found;
}"""


def assert_titles_clear(page: Any, where: object = "") -> int:
    """No chart title under a modebar; returns how many plots were checked (so a caller can
    tell that charts were there at all)."""
    covered = page.evaluate(OVERLAPS)
    assert covered == [], (where, covered)
    return int(page.evaluate("() => document.querySelectorAll('.js-plotly-plot .modebar').length"))
