"""The real-scene evaluation's parts (scoring, data, report); ``scripts/evaluate_real_scenes.py`` runs them."""
