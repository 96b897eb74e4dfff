"""Fig. 7: the softmax posterior of a classifier for a few hits.

Input: ``results/predict/{dataset}/{model}/posteriors.parquet`` in long format (``event_id, hit_id,
true_class, class_id, probability``, as written by `trackpipe.predict`: the top-k classes of a few hits). One panel per hit: bars of the class
probabilities in decreasing order, the true class in a highlight colour (or a note when the true
class is not among the stored top-k).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .style import new_figure, no_data, require_columns, save_figure, style

POSTERIOR_COLUMNS = ("event_id", "hit_id", "true_class", "class_id", "probability")
TRUE_COLOUR = "#d62728"
OTHER_COLOUR = "#1f77b4"


def select_hits(posteriors: pd.DataFrame, max_hits: int) -> list[tuple[int, int]]:
    """The first `max_hits` (event_id, hit_id) pairs in sorted order: a reproducible choice."""
    pairs = posteriors[["event_id", "hit_id"]].drop_duplicates().sort_values(["event_id", "hit_id"])
    return [(int(e), int(h)) for e, h in pairs.head(max_hits).itertuples(index=False)]


def plot_posteriors(posteriors: pd.DataFrame, out, *, hits=None, max_hits: int = 4, title: str | None = None):
    """Bar chart of the stored class probabilities for `hits` (default: the first `max_hits` hits)."""
    require_columns(posteriors, POSTERIOR_COLUMNS, what="posteriors table")
    hits = select_hits(posteriors, max_hits) if hits is None else [(int(e), int(h)) for e, h in hits]
    with style():
        fig, axes = new_figure(1, max(len(hits), 1), width=2.4, height=2.4, sharey=True)
        if not hits:
            no_data(axes[0, 0])
        for ax, (event_id, hit_id) in zip(axes[0], hits):
            rows = posteriors[(posteriors.event_id == event_id) & (posteriors.hit_id == hit_id)]
            rows = rows.sort_values(["probability", "class_id"], ascending=[False, True])
            true_class = int(rows.true_class.iloc[0]) if len(rows) else None
            classes = rows["class_id"].to_numpy()
            colours = np.where(classes == true_class, TRUE_COLOUR, OTHER_COLOUR)
            ax.bar(np.arange(len(rows)), rows.probability.to_numpy(float), color=colours)
            ax.set_xticks(np.arange(len(rows)), [str(c) for c in classes], rotation=90)
            ax.tick_params(axis="x", which="minor", bottom=False, top=False)
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("class")
            ax.set_title(f"event {event_id}, hit {hit_id}\ntrue class {true_class}")
            if true_class is not None and true_class not in classes:
                ax.text(0.95, 0.9, "true class not in top-k", transform=ax.transAxes, ha="right",
                        color=TRUE_COLOUR, fontsize=7)
        axes[0, 0].set_ylabel("softmax probability")
        if title:
            fig.suptitle(title)
        save_figure(fig, out)
    return fig
