"""Probing data: corpora, annotations and task builders."""

from probekit.data._movie_reviews import load_movie_reviews

__all__ = ["load_movie_reviews"]
