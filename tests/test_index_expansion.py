"""Query expansion (αQE): the expanded query is computed as the formula says, from the best
regions of the top n admissible images, on both backends; n = 0 is the exact search."""

from __future__ import annotations

import numpy as np
import pytest
from support_index import BACKENDS, image_id, open_at
from test_index_normaliser import fill_skewed, skewed, unit

from regiond.core.errors import InputError
from regiond.index import SearchFilter
from regiond.index.normalising.normaliser import fit_normaliser
from regiond.index.searching import EXPANSION_ALPHA, MAX_EXPANSION


def best_scores(idx, qn: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """Each image's best region score against the unit query qn in the index's space, and
    that region's vector, from the stored raw features."""
    out = {}
    for i in range(100):
        if image_id(i) in idx:
            x = idx.prepare(idx._raw_features(image_id(i)))
            s = x @ qn
            out[image_id(i)] = (float(s.max()), x[int(np.argmax(s))])
    return out


def expanded_by_hand(idx, q: np.ndarray, n: int, admissible=lambda iid: True) -> np.ndarray:
    """αQE written out: q plus the best region of each of the top n admissible images,
    weighted by its score^α, renormalised."""
    qn = idx.prepare(q[None])[0]
    best = {k: v for k, v in best_scores(idx, qn).items() if admissible(k)}
    top = sorted(best, key=lambda k: -best[k][0])[:n]
    out = qn.astype(np.float64) + sum(max(best[k][0], 0) ** EXPANSION_ALPHA * best[k][1] for k in top)
    return unit(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_expanded_scores_follow_the_formula(tmp_path, backend):
    with open_at(tmp_path, backend, normaliser=fit_normaliser(skewed(3000, seed=9), "whiten")) as idx:
        fill_skewed(idx)
        q = skewed(1, seed=77)[0]
        exact = idx.score_images(q)
        assert idx.score_images(q, expand=0) == exact
        for n in (1, 4):
            e = expanded_by_hand(idx, q, n)
            want = {k: s for k, (s, _) in best_scores(idx, e.astype(np.float32)).items()}
            got = idx.score_images(q, expand=n)
            assert got == pytest.approx(want, abs=1e-4)
            assert got != pytest.approx(exact, abs=1e-3)  # it did move the query
            hits = idx.search(q, k=5, expand=n)
            assert [h.image_id for h in hits] == sorted(want, key=lambda k: -want[k])[:5]


@pytest.mark.parametrize("backend", BACKENDS)
def test_expansion_draws_only_on_admissible_images(tmp_path, backend):
    with open_at(tmp_path, backend, normaliser=fit_normaliser(skewed(3000, seed=9), "whiten")) as idx:
        fill_skewed(idx)
        q = skewed(1, seed=78)[0]
        even = lambda k: int(k[3:]) % 2 == 0  # noqa: E731
        top_even = sorted(k for k in best_scores(idx, idx.prepare(q[None])[0]) if even(k))
        e = expanded_by_hand(idx, q, 3, lambda k: even(k) and k != top_even[0])
        want = {k: s for k, (s, _) in best_scores(idx, e.astype(np.float32)).items() if even(k) and k != top_even[0]}
        hits = idx.search(
            q, k=4, expand=3, filter=SearchFilter(metadata={"parity": "even"}), exclude_image_ids=[top_even[0]]
        )
        assert [h.image_id for h in hits] == sorted(want, key=lambda k: -want[k])[:4]
        assert [h.score for h in hits] == pytest.approx(sorted(want.values(), reverse=True)[:4], abs=1e-4)
        got = idx.score_images(q, expand=3, exclude_image_ids=[top_even[0]])
        e_all = expanded_by_hand(idx, q, 3, lambda k: k != top_even[0])
        assert got == pytest.approx(
            {k: s for k, (s, _) in best_scores(idx, e_all.astype(np.float32)).items()}, abs=1e-4
        )


def test_bad_expansions_are_refused(tmp_path):
    with open_at(tmp_path, "faiss") as idx:
        fill_skewed(idx, 5)
        q = skewed(1)[0]
        for n in (-1, MAX_EXPANSION + 1):
            with pytest.raises(InputError, match="query_expansion"):
                idx.search(q, expand=n)
        with pytest.raises(InputError, match="linear probe"):
            idx.search(idx.prepare(q[None])[0], normalize=False, expand=2)
        assert len(idx.search(q, k=3, expand=50)) == 3  # more than there are images: all of them
