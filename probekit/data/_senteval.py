"""SentEval probing tasks (Conneau et al. 2018) built from real sentences.

Built from the gold UD EWT parses (``source="ud"``) or the silver spaCy
parses of the Rotten Tomatoes sentences (``source="rt"``). As in the paper,
only sentences of 5 to 28 words are used (others are skipped and counted in
``task.meta["skipped"]``), and every task is balanced: each class is
down-sampled (seeded) to the size of the smallest, so chance is
``1 / n_classes``. Sentences keep the split of their source sentence.

Dependency labels are read in both the UD scheme (``nsubj``, ``obj``,
``aux:pass``) and spaCy's ClearNLP scheme (``nsubjpass``, ``dobj``,
``auxpass``). The *main verb* is the root, or, when the root is not a finite
verb (copular or passive clauses: "is happy", "is destined"), its first
finite ``aux``/``cop`` dependent.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial

import numpy as np

from probekit.data._conllu import Sentence, tree_depths
from probekit.data._tasks import TaskSpec, add_to

__all__ = ["balance", "SENTLEN_BINS", "SENTENCE_TASKS"]

logger = logging.getLogger(__name__)

#: This module's sentence tasks, in order (:mod:`probekit.data._registry` puts them into ``TASKS``).
SENTENCE_TASKS: list[TaskSpec] = []
_task = partial(add_to, SENTENCE_TASKS)

MIN_LEN, MAX_LEN = 5, 28
SENTLEN_BINS = ((8, "5-8"), (12, "9-12"), (16, "13-16"), (20, "17-20"), (25, "21-25"), (28, "26-28"))
SUBJ = {"nsubj", "nsubj:pass", "nsubjpass", "nsubj:outer"}
OBJ = {"obj", "dobj"}
AUX = {"aux", "aux:pass", "auxpass", "cop"}


def balance(cands: list[tuple[int, str]], names: tuple[str, ...], seed: int) -> tuple[list[int], list[str]]:
    """Down-sample ``(index, label)`` candidates to the smallest class's size (seeded); keep corpus order."""
    rng = np.random.default_rng(seed)
    by: dict[str, list[int]] = {n: [] for n in names}
    for i, lab in cands:
        by[lab].append(i)
    m = min((len(v) for v in by.values()), default=0)
    chosen = []
    for n in names:
        pick = rng.choice(len(by[n]), size=m, replace=False) if m else []
        chosen += [(by[n][p], n) for p in pick]
    chosen.sort()
    return [i for i, _ in chosen], [lab for _, lab in chosen]


def _finish(cands, names, seed, skipped, n_total, words_of=None, extra=None):
    """Balance, and shape the builder's return value."""
    keep, labels = balance(cands, names, seed)
    counts = Counter(lab for _, lab in cands)
    skipped = dict(skipped)
    skipped["dropped to balance classes"] = len(cands) - len(keep)
    meta = {"skipped": skipped, "candidates_per_class": {n: counts[n] for n in names}}
    if words_of is not None:
        meta["words"] = [words_of[i] for i in keep]
    meta.update(extra or {})
    assert sum(skipped.values()) + len(keep) == n_total, (skipped, len(keep), n_total)
    return labels, names, meta, keep


def _length_ok(sents):
    ok = [i for i, s in enumerate(sents) if MIN_LEN <= len(s) <= MAX_LEN]
    return ok, {f"length outside {MIN_LEN}-{MAX_LEN} words": len(sents) - len(ok)}


def main_verb(s: Sentence) -> int | None:
    """Index of the finite main verb: the root if finite, else its first finite aux/cop; None if neither."""
    roots = s.roots()
    if not roots:
        return None
    r = roots[0]
    if s.feats[r].get("VerbForm") == "Fin" and "Tense" in s.feats[r]:
        return r
    for c in s.children(r):
        if s.deprels[c] in AUX and s.feats[c].get("VerbForm") == "Fin" and "Tense" in s.feats[c]:
            return c
    return None


# ---------------------------------------------------------------- tasks
@_task("sentlen", "sentence", ("ud", "rt"), "SentLen: number of words in 6 bins 5-8, 9-12, 13-16, 17-20, "
               "21-25, 26-28 (Conneau et al. 2018); balanced by down-sampling (seeded).")
def _sentlen(sents, splits, seed, source):
    ok, skipped = _length_ok(sents)
    names = tuple(n for _, n in SENTLEN_BINS)
    cands = [(i, next(n for hi, n in SENTLEN_BINS if len(sents[i]) <= hi)) for i in ok]
    return _finish(cands, names, seed, skipped, len(sents))


def _wordcontent_vocab(sents, ok, n_words, skip_top, band, min_per_class):
    freq = Counter(w.lower() for i in ok for w in sents[i].words if w.isalpha() and len(w) > 2)
    ranked = [w for w, _ in freq.most_common()]
    words = set(ranked[skip_top: skip_top + band])
    lowered = {i: {w.lower() for w in sents[i].words} for i in ok}
    docfreq = Counter(w for i in ok for w in lowered[i] & words)
    while words:
        # drop the weakest tenth (fewest sentences holding only that word; ties: most blocking first)
        # until every kept word has min_per_class such sentences and at most n_words remain
        per = Counter(next(iter(h)) for h in (lowered[i] & words for i in ok) if len(h) == 1)
        if len(words) <= n_words and all(per[w] >= min_per_class for w in words):
            break
        ranked_w = sorted(words, key=lambda w: (per[w], -docfreq[w], w))
        words -= set(ranked_w[: max(1, len(words) // 10)])
    hits = {i: lowered[i] & words for i in ok}
    return words, hits, ranked


@_task("wordcontent", "sentence", ("ud", "rt"), "WordContent: which of a set of mid-frequency words the "
               "sentence contains, keeping sentences with exactly one of them. Words: lower-cased alphabetic "
               "types of 3+ letters ranked by corpus frequency; the 100 most frequent are skipped, and from the "
               "next 2,000 the (at most 1,000, as in the paper) words with the most qualifying sentences and at "
               "least 20 each (on slices under 4,000 usable sentences: usable/200, at least 5) are kept "
               "(re-checked until stable). On these small corpora far fewer than 1,000 words qualify: see "
               "meta['n_words']. Balanced by down-sampling (seeded).")
def _wordcontent(sents, splits, seed, source, *, n_words=1000, skip_top=100, band=2000, min_per_class=None):
    ok, skipped = _length_ok(sents)
    if min_per_class is None:  # 20 on full corpora; a small slice gets fewer (len/200, at least 5)
        min_per_class = min(20, max(5, len(ok) // 200))
    words, hits, ranked = _wordcontent_vocab(sents, ok, n_words, skip_top, band, min_per_class)
    cands = [(i, next(iter(h))) for i, h in hits.items() if len(h) == 1]
    n0 = sum(1 for h in hits.values() if not h)
    skipped["none of the chosen words"] = n0
    skipped["two or more of the chosen words"] = len(ok) - len(cands) - n0
    names = tuple(sorted(words))
    if not names:
        raise ValueError(f"wordcontent: no word has {min_per_class} sentences in this corpus slice; use more data")
    rank = {w: r for r, w in enumerate(ranked)}
    extra = {"n_words": len(names), "min_per_class": min_per_class,
             "frequency_ranks": (min(rank[w] for w in names), max(rank[w] for w in names))}
    return _finish(cands, names, seed, skipped, len(sents), extra=extra)


@_task("bigramshift", "sentence", ("ud", "rt"), "BigramShift: in a seeded half of the sentences two "
               "random adjacent words are swapped ('inverted'), the rest are 'original'. The pair never includes "
               "a sentence-final punctuation mark and never two identical words. Exactly balanced.")
def _bigramshift(sents, splits, seed, source):
    ok, skipped = _length_ok(sents)
    rng = np.random.default_rng(seed)
    order = rng.permutation(ok)
    inverted = set(int(i) for i in order[: len(ok) // 2])
    words_of, cands, n_same = {}, [], 0
    for i in ok:
        w = list(sents[i].words)
        if i in inverted:
            stop = len(w) - 1 if sents[i].upos[-1] == "PUNCT" else len(w)
            pairs = [k for k in range(stop - 1) if w[k] != w[k + 1]]
            if not pairs:
                n_same += 1
                continue
            k = pairs[rng.integers(len(pairs))]
            w[k], w[k + 1] = w[k + 1], w[k]
        words_of[i] = tuple(w)
        cands.append((i, "inverted" if i in inverted else "original"))
    skipped["no swappable pair"] = n_same
    return _finish(cands, ("original", "inverted"), seed, skipped, len(sents), words_of=words_of)


def depth_classes(depths: list[int], min_classes: int = 5) -> tuple[int, int]:
    """``(lo, hi)`` for classes ``<=lo, lo+1, ..., >=hi`` (at least ``min_classes``) maximising the
    balanced total ``n_classes * smallest class``; ties go to more classes."""
    c = Counter(depths)
    best, arg = -1, (3, 3 + min_classes - 1)
    for lo in range(1, max(c) + 1):
        for hi in range(lo + min_classes - 1, max(c) + 1):
            counts = [sum(v for d, v in c.items() if d <= lo)] + [c[d] for d in range(lo + 1, hi)]
            counts.append(sum(v for d, v in c.items() if d >= hi))
            score = min(counts) * len(counts)
            if score > best or (score == best and hi - lo > arg[1] - arg[0]):
                best, arg = score, (lo, hi)
    return arg


@_task("treedepth", "sentence", ("ud", "rt"), "TreeDepth: depth of the dependency tree (words on the "
               "longest root-to-leaf path; the root alone is 1). Classes '<=lo', lo+1, ..., '>=hi', at least 5, "
               "with lo/hi chosen on the corpus slice to maximise the balanced total (meta['depth_range']); "
               "balanced by down-sampling (seeded). Dependency trees are shallower than the constituency trees "
               "of the paper (depths 5-12), hence the lower range.")
def _treedepth(sents, splits, seed, source):
    ok, skipped = _length_ok(sents)
    depth = {i: max(tree_depths(sents[i].heads)) + 1 for i in ok}
    lo, hi = depth_classes(list(depth.values()))
    names = (f"<={lo}",) + tuple(str(d) for d in range(lo + 1, hi)) + (f">={hi}",)
    cands = [(i, names[0] if d <= lo else names[-1] if d >= hi else str(d)) for i, d in depth.items()]
    return _finish(cands, names, seed, skipped, len(sents), extra={"depth_range": (lo, hi)})


@_task("tense", "sentence", ("ud", "rt"), "Tense: Tense feature (past/present) of the main verb (the root, "
               "or its first finite aux/cop when the root is not finite), from the morphology (gold for ud, "
               "spaCy for rt). Sentences without a finite main verb are skipped. Balanced (seeded).")
def _tense(sents, splits, seed, source):
    ok, skipped = _length_ok(sents)
    cands, n_none = [], 0
    for i in ok:
        v = main_verb(sents[i])
        t = None if v is None else sents[i].feats[v].get("Tense")
        if t not in ("Past", "Pres"):
            n_none += 1
            continue
        cands.append((i, "past" if t == "Past" else "present"))
    skipped["no finite past/present main verb"] = n_none
    return _finish(cands, ("past", "present"), seed, skipped, len(sents))


def _number_task(rels, what):
    def builder(sents, splits, seed, source):
        ok, skipped = _length_ok(sents)
        cands, n_none, n_other = [], 0, 0
        for i in ok:
            s = sents[i]
            roots = s.roots()
            dep = [c for c in s.children(roots[0]) if s.deprels[c] in rels] if roots else []
            if not dep:
                n_none += 1
                continue
            tag = s.xpos[dep[0]]
            if tag not in ("NN", "NNS"):
                n_other += 1
                continue
            cands.append((i, tag))
        skipped[f"main clause has no {what}"] = n_none
        skipped[f"{what} is not a common noun (NN/NNS)"] = n_other
        return _finish(cands, ("NN", "NNS"), seed, skipped, len(sents))

    return builder


_task("subjnum", "sentence", ("ud", "rt"), "SubjNum: number of the subject (nsubj / nsubj:pass) of the "
              "root, NN (singular) vs NNS (plural) from its Penn tag; other subjects (pronouns, proper nouns) "
              "skipped. Balanced (seeded).")(_number_task(SUBJ, "subject"))
_task("objnum", "sentence", ("ud", "rt"), "ObjNum: number of the direct object (obj / dobj) of the root, "
              "NN vs NNS from its Penn tag; other objects skipped. Balanced (seeded).")(_number_task(OBJ, "object"))


def _subtree(s: Sentence, r: int) -> set[int]:
    out, stack = set(), [r]
    while stack:
        k = stack.pop()
        out.add(k)
        stack += s.children(k)
    return out


def coord_split(s: Sentence):
    """``(clause1, link, clause2, final)`` word tuples when ``s`` is two coordinated clauses, else None.

    ``link`` is the conjunction with any comma/semicolon before it; ``final`` the closing punctuation.

    The root must have exactly one clausal ``conj`` (one with its own subject) after it, joined by a
    ``cc``; the second clause must be exactly that conjunct's subtree up to any final punctuation.
    """
    roots = s.roots()
    if len(roots) != 1:
        return None
    r = roots[0]
    conj = [c for c in s.children(r) if s.deprels[c].split(":")[0] == "conj" and c > r]
    clausal = [c for c in conj if any(s.deprels[k] in SUBJ or s.deprels[k] == "expl" for k in s.children(c))]
    if len(conj) != 1 or len(clausal) != 1:
        return None
    c = clausal[0]
    # the cc hangs on the second conjunct in UD, on the first in spaCy's ClearNLP scheme
    ccs = [k for k in s.children(c) + s.children(r) if s.deprels[k] == "cc" and r < k < c]
    if len(ccs) != 1:
        return None
    k = ccs[0]
    end = len(s)
    while end > 0 and s.upos[end - 1] == "PUNCT":
        end -= 1
    sub = _subtree(s, c)
    if set(range(k + 1, end)) != sub - {k} - set(range(end, len(s))):
        return None
    first = list(s.words[:k])
    sep: list[str] = []
    while first and first[-1] in (",", ";"):
        sep.insert(0, first.pop())
    second = list(s.words[k + 1: end])
    if len(first) < 2 or len(second) < 2:
        return None
    return tuple(first), tuple(sep) + (s.words[k],), tuple(second), tuple(s.words[end:])


@_task("coordinv", "sentence", ("ud", "rt"), "CoordInv: sentences made of two coordinated clauses (see "
               "coord_split); in a seeded half the clauses are swapped ('inverted': clause2 [,] cc clause1), the "
               "rest 'original'. Capitalisation moves with sentence position (the first letter of a lower-cased "
               "non-proper word is re-cased). Exactly balanced.")
def _coordinv(sents, splits, seed, source):
    ok, skipped = _length_ok(sents)
    parts = {i: coord_split(sents[i]) for i in ok}
    good = [i for i in ok if parts[i] is not None]
    skipped["not two coordinated clauses"] = len(ok) - len(good)
    rng = np.random.default_rng(seed)
    inverted = set(int(i) for i in rng.permutation(good)[: len(good) // 2])
    words_of, cands = {}, []
    for i in good:
        if i not in inverted:
            words_of[i] = sents[i].words
            cands.append((i, "original"))
            continue
        first, link, second, final = parts[i]
        s = sents[i]
        first, second = list(first), list(second)
        if first[0][:1].isupper() and s.upos[0] != "PROPN" and first[0] != "I":
            first[0] = first[0][:1].lower() + first[0][1:]
            second[0] = second[0][:1].upper() + second[0][1:]
        words_of[i] = tuple(second + list(link) + first + list(final))
        cands.append((i, "inverted"))
    return _finish(cands, ("original", "inverted"), seed, skipped, len(sents), words_of=words_of)


@_task("sentiment", "sentence", ("rt",), "Sentiment of the Rotten Tomatoes sentence (neg/pos, the "
               "corpus's own labels); all lengths; balanced by down-sampling (seeded).")
def _sentiment(sents, splits, seed, source):
    cands = [(i, s.extra["label"]) for i, s in enumerate(sents)]
    return _finish(cands, ("neg", "pos"), seed, {}, len(sents))
