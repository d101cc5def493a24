"""Text classification: fine-tuning with data-aware recipes, the search, evaluation against TF-IDF, its pyfunc."""
